import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { HostpullError, isHostpullError } from '../errors.js';
import { execTool } from './exec-tool.js';

/** One .deb as apt would fetch it (from `apt-get download --print-uris`). */
export interface DebFile {
  /** Binary package name. */
  name: string;
  /** File name in the pool, `name_version_arch.deb`: names the exact version. */
  file: string;
  size: number;
  sha256: string;
}

// Plain apt-get as root warns that the `_apt` sandbox user cannot write the target directory;
// downloading as root into our own work dir is what we want, so say so instead of chmod'ing.
const APT_OPTS = ['-o', 'APT::Sandbox::User=root', '-q'];

/**
 * Asks apt which files it would download for these packages, without downloading: the file
 * names carry the candidate versions, which is what the build caches are keyed on. A machine
 * whose package lists were never fetched gets one `apt-get update` and a second try.
 */
export async function planDebs(names: readonly string[], signal?: AbortSignal): Promise<DebFile[]> {
  const ask = () => execTool('apt-get', [...APT_OPTS, 'download', '--print-uris', ...names], signal ? { signal } : {});
  let out: string;
  try {
    out = (await ask()).stdout;
  } catch (err) {
    // apt says on stderr when its package lists lack a name (no `apt-get update` yet).
    const stderr = isHostpullError(err, 'DEMO_TOOL_FAILED') ? String(err.details?.stderr ?? '') : '';
    if (!/Unable to locate|has no installation candidate|Can't select/i.test(stderr)) throw err;
    await execTool('apt-get', ['-qq', 'update'], signal ? { signal } : {});
    out = (await ask()).stdout;
  }
  const debs: DebFile[] = [];
  for (const line of out.split('\n')) {
    const m = /^'[^']+' (\S+\.deb) (\d+) (?:SHA256:)?([0-9a-f]{64})/.exec(line);
    if (!m) continue;
    debs.push({ name: m[1]!.split('_')[0]!, file: m[1]!, size: Number(m[2]), sha256: m[3]! });
  }
  const missing = names.filter((n) => !debs.some((d) => d.name === n));
  if (missing.length > 0) {
    throw new HostpullError('DEMO_APT_FAILED', `apt has no candidate for ${missing.join(', ')}`, { hint: 'run `apt-get update`; this demo expects Debian 12 (bookworm) package sources' });
  }
  return debs.sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : 0));
}

/** Downloads (into `dir`) the planned files that are not there yet; apt verifies their hashes. */
export async function downloadDebs(debs: readonly DebFile[], dir: string, signal?: AbortSignal): Promise<{ downloaded: number; bytes: number }> {
  const need: DebFile[] = [];
  for (const d of debs) {
    const st = await stat(join(dir, d.file)).catch(() => null);
    if (st?.size !== d.size) need.push(d);
  }
  if (need.length > 0) {
    // name=version pins exactly the file planned, even if the lists change in between.
    const pins = need.map((d) => `${d.name}=${decodeURIComponent(d.file.split('_')[1]!)}`);
    await execTool('apt-get', [...APT_OPTS, 'download', ...pins], { cwd: dir, ...(signal ? { signal } : {}) });
  }
  return { downloaded: need.length, bytes: need.reduce((n, d) => n + d.size, 0) };
}

/**
 * The `*-java` library packages `pkg` needs, recursively, without recommends: for maven these
 * are the jars /usr/share/maven/lib links to. ca-certificates-java is left out: it ships no jar,
 * only a postinst that builds the JDK trust store, which a relocated tree cannot run.
 */
export async function javaLibraryClosure(pkg: string, signal?: AbortSignal): Promise<string[]> {
  const { stdout } = await execTool(
    'apt-cache',
    ['depends', '--recurse', '--no-recommends', '--no-suggests', '--no-conflicts', '--no-breaks', '--no-replaces', '--no-enhances', pkg],
    signal ? { signal } : {},
  );
  const names = new Set<string>();
  for (const line of stdout.split('\n')) {
    if (line.startsWith(' ') || !/^[a-z0-9][a-z0-9.+-]*-java$/.test(line)) continue;
    if (line !== 'ca-certificates-java') names.add(line);
  }
  return [...names].sort();
}

/**
 * Unpacks the data of .deb files into `dest` without installing anything (no maintainer
 * scripts, no dpkg database). `--keep-directory-symlink` keeps a merged-/usr layout made
 * beforehand (lib → usr/lib) instead of replacing the links with directories.
 */
export async function extractDebs(files: readonly string[], dest: string, signal?: AbortSignal): Promise<void> {
  for (const file of files) {
    await execTool('bash', ['-o', 'pipefail', '-c', 'dpkg-deb --fsys-tarfile "$1" | tar -x --keep-directory-symlink --no-same-owner -C "$2"', 'extract', file, dest], signal ? { signal } : {});
  }
}
