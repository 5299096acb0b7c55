import { HostpullError } from '../errors.js';
import { readFileInRoot } from './resolve-in-root.js';

export interface ResolvedUser {
  uid: number;
  gid: number;
  /** Supplementary groups from the rootfs's /etc/group (only when no group was given explicitly). */
  additionalGids: number[];
  /** Home directory from the rootfs's /etc/passwd, when the user has an entry. */
  home?: string;
}

interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  home: string;
}
interface GroupEntry {
  name: string;
  gid: number;
  members: string[];
}

/** runc refuses ids above MaxInt32; refuse them here with a clearer message. */
const MAX_ID = 2 ** 31 - 1;
const NUMERIC = /^[0-9]+$/;

function parseId(text: string, what: string): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n > MAX_ID) throw new HostpullError('USER_INVALID', `${what} ${text} is out of range (0..${MAX_ID})`);
  return n;
}

function parsePasswd(text: string | undefined): PasswdEntry[] {
  const out: PasswdEntry[] = [];
  for (const line of (text ?? '').split('\n')) {
    const f = line.split(':');
    // name:password:uid:gid:gecos:home:shell; malformed lines are skipped, as libc does.
    if (f.length < 4 || !f[0] || !NUMERIC.test(f[2]!) || !NUMERIC.test(f[3]!)) continue;
    out.push({ name: f[0], uid: Number(f[2]), gid: Number(f[3]), home: f[5] ?? '' });
  }
  return out;
}

function parseGroup(text: string | undefined): GroupEntry[] {
  const out: GroupEntry[] = [];
  for (const line of (text ?? '').split('\n')) {
    const f = line.split(':');
    // name:password:gid:member,member
    if (f.length < 3 || !f[0] || !NUMERIC.test(f[2]!)) continue;
    out.push({ name: f[0], gid: Number(f[2]), members: (f[3] ?? '').split(',').filter((m) => m !== '') });
  }
  return out;
}

/**
 * Resolves an image `User` (`uid`, `uid:gid`, `name`, `name:group`, mixed) the way Docker and
 * runc's libcontainer/user do, but against the *rootfs's* /etc/passwd and /etc/group — the host's
 * files say nothing about the image's users — read without following symlinks out of the rootfs.
 * An empty string means root. A numeric uid without a passwd entry is allowed (gid 0); a name
 * that is not in the rootfs is an error.
 */
export function resolveUser(rootfsPath: string, spec: string | undefined): ResolvedUser {
  const text = (spec ?? '').trim();
  if (text === '') return { uid: 0, gid: 0, additionalGids: [] };
  const colon = text.indexOf(':');
  const userPart = colon === -1 ? text : text.slice(0, colon);
  const groupPart = colon === -1 ? undefined : text.slice(colon + 1);
  if (userPart === '' || groupPart === '') throw new HostpullError('USER_INVALID', `user "${text}": expected user[:group]`);

  // Read lazily: a plain "1000:1000" needs neither file (distroless images have none).
  let passwd: PasswdEntry[] | undefined;
  let groups: GroupEntry[] | undefined;
  const getPasswd = () => (passwd ??= parsePasswd(readFileInRoot(rootfsPath, '/etc/passwd')));
  const getGroups = () => (groups ??= parseGroup(readFileInRoot(rootfsPath, '/etc/group')));

  let entry: PasswdEntry | undefined;
  let uid: number;
  if (NUMERIC.test(userPart)) {
    uid = parseId(userPart, 'uid');
    entry = getPasswd().find((p) => p.uid === uid);
  } else {
    entry = getPasswd().find((p) => p.name === userPart);
    if (!entry) {
      throw new HostpullError('USER_NOT_FOUND', `user "${userPart}" is not in the image's /etc/passwd`, {
        hint: 'use a numeric uid[:gid], or add the user to the image',
        details: { rootfs: rootfsPath },
      });
    }
    uid = entry.uid;
  }

  let gid = entry?.gid ?? 0;
  let additionalGids: number[] = [];
  if (groupPart !== undefined) {
    if (NUMERIC.test(groupPart)) {
      gid = parseId(groupPart, 'gid');
    } else {
      const g = getGroups().find((x) => x.name === groupPart);
      if (!g) throw new HostpullError('GROUP_NOT_FOUND', `group "${groupPart}" is not in the image's /etc/group`, { details: { rootfs: rootfsPath } });
      gid = g.gid;
    }
  } else if (entry) {
    // libcontainer adds the groups listing the user only when no group was forced.
    const name = entry.name;
    additionalGids = [...new Set(getGroups().filter((g) => g.members.includes(name) && g.gid !== gid).map((g) => g.gid))];
  }
  if (uid > MAX_ID || gid > MAX_ID) throw new HostpullError('USER_INVALID', `user "${text}": id out of range`);
  return entry && entry.home !== '' ? { uid, gid, additionalGids, home: entry.home } : { uid, gid, additionalGids };
}
