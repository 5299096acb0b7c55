import { readFileSync } from 'node:fs';
import { HostpullError } from '../errors.js';

/**
 * The gid for `--socket-group`: a number as given, or a name looked up in the group file (Node
 * has no getgrnam; /etc/group is what NSS reads for local system groups such as `hostpull`).
 */
export function resolveGroup(spec: string, groupFile = '/etc/group'): number {
  if (/^\d+$/.test(spec)) return Number(spec);
  let text = '';
  try {
    text = readFileSync(groupFile, 'utf8');
  } catch {
    // No group file: the name is unknown, said below.
  }
  for (const line of text.split('\n')) {
    const [name, , gid] = line.split(':');
    if (name === spec && gid !== undefined && /^\d+$/.test(gid)) return Number(gid);
  }
  throw new HostpullError('USAGE', `--socket-group ${spec}: no such group in ${groupFile}`, {
    hint: `create it (\`groupadd --system ${spec}\`) and add the users who may use the daemon, or pass a numeric gid`,
  });
}
