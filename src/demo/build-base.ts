import { chmod, lstat, mkdir, readdir, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { HostpullError } from '../errors.js';
import { downloadDebs, extractDebs, planDebs, type DebFile } from './apt.js';
import type { AptQueryCache } from './apt-query-cache.js';
import { buildKey, readMarker, writeMarker } from './build-marker.js';
import { execTool } from './exec-tool.js';

/**
 * The Debian packages of the base: the C and C++ runtimes and zlib the JDK's native code links
 * against, busybox for /bin/sh and the tools Maven's launcher script calls (uname, expr, dirname,
 * tr…), base-files for /etc/os-release and the directory skeleton.
 *
 * Why not `debootstrap --variant=minbase`: measured here it took 3 min 44 s (most of it dpkg
 * configuring 90 packages one by one) for 206 MB; this base is assembled in seconds, is a tenth
 * of the size, and is enough for the relocated packages, which bring everything else themselves.
 */
const BASE_DEBS = ['base-files', 'busybox-static', 'libc6', 'libgcc-s1', 'libstdc++6', 'zlib1g'];

export interface BuiltBase {
  rootfs: string;
  key: string;
  debs: string[];
  files: number;
  bytes: number;
  cached: boolean;
  ms: number;
}

interface BaseMarker {
  key: string;
  debs: string[];
  files: number;
  bytes: number;
}

export interface BuildBaseOptions {
  work: string;
  /** Reuses apt's answers while its lists are unchanged. Default: ask apt every time. */
  aptCache?: AptQueryCache | undefined;
  signal?: AbortSignal;
}

const PASSWD = 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n';
const GROUP = 'root:x:0:\nnogroup:x:65534:\n';
/** Documentation is no use in a container base and is a third of these packages' files. */
const TRIM = ['usr/share/doc', 'usr/share/man', 'usr/share/info', 'usr/share/lintian', 'usr/share/locale'];

async function treeSize(dir: string): Promise<{ files: number; bytes: number }> {
  let files = 0;
  let bytes = 0;
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) {
      const s = await treeSize(p);
      files += s.files;
      bytes += s.bytes;
    } else {
      files++;
      if (e.isFile()) bytes += (await stat(p)).size;
    }
  }
  return { files, bytes };
}

/** A merged-/usr skeleton, as Debian 12 installs it, so the packages' /lib files land in /usr/lib. */
async function skeleton(rootfs: string): Promise<void> {
  for (const d of ['usr/bin', 'usr/sbin', 'usr/lib', 'usr/lib64']) await mkdir(join(rootfs, d), { recursive: true });
  for (const d of ['bin', 'sbin', 'lib', 'lib64']) await symlink(`usr/${d}`, join(rootfs, d));
}

/** busybox's applets as links, where no real program of that name is installed. */
async function installBusybox(rootfs: string, signal?: AbortSignal): Promise<void> {
  // busybox-static is statically linked, so the host can run the staged copy to ask it.
  const { stdout } = await execTool(join(rootfs, 'usr/bin/busybox'), ['--list-full'], signal ? { signal } : {});
  for (const path of stdout.split('\n').map((l) => l.trim()).filter(Boolean)) {
    const at = join(rootfs, path);
    if (await lstat(at).catch(() => null)) continue;
    await mkdir(dirname(at), { recursive: true });
    await symlink('/usr/bin/busybox', at);
  }
}

async function finishFilesystem(rootfs: string, signal?: AbortSignal): Promise<void> {
  for (const d of TRIM) await rm(join(rootfs, d), { recursive: true, force: true });
  for (const d of ['proc', 'sys', 'dev', 'run', 'root', 'tmp', 'var/tmp', 'home']) await mkdir(join(rootfs, d), { recursive: true });
  // The JVM keeps hsperfdata in /tmp and jansi unpacks its native library there.
  await chmod(join(rootfs, 'tmp'), 0o1777);
  await chmod(join(rootfs, 'var/tmp'), 0o1777);
  await chmod(join(rootfs, 'root'), 0o700);
  await writeFile(join(rootfs, 'etc/passwd'), PASSWD);
  await writeFile(join(rootfs, 'etc/group'), GROUP);
  // ld.so.cache: libraries are found the way an installed system finds them. `-r` chroots,
  // so this needs root, which the demo needs anyway.
  await execTool('/sbin/ldconfig', ['-r', rootfs], signal ? { signal } : {});
}

/**
 * Assembles (once; cached by base.json) the base rootfs under <work>/base/rootfs from Debian
 * packages downloaded with apt and unpacked without installing.
 */
export async function buildBase(options: BuildBaseOptions): Promise<BuiltBase> {
  const t0 = performance.now();
  const { work, signal } = options;
  const dir = join(work, 'base');
  const rootfs = join(dir, 'rootfs');
  const markerFile = join(dir, 'base.json');
  const ask = () => planDebs(BASE_DEBS, signal);
  const plan = await (options.aptCache ? options.aptCache.get<DebFile[]>(`plan ${BASE_DEBS.join(' ')}`, ask) : ask());
  const key = buildKey('base', plan);
  const marker = await readMarker<BaseMarker>(markerFile);
  if (marker?.key === key && (await stat(join(rootfs, 'usr/bin/busybox')).catch(() => null))) {
    return { rootfs, key, debs: marker.debs, files: marker.files, bytes: marker.bytes, cached: true, ms: performance.now() - t0 };
  }
  const debDir = join(work, 'debs');
  await mkdir(debDir, { recursive: true });
  await rm(markerFile, { force: true });
  await rm(rootfs, { recursive: true, force: true });
  await mkdir(rootfs, { recursive: true });
  await downloadDebs(plan, debDir, signal);
  await skeleton(rootfs);
  await extractDebs(plan.map((d) => join(debDir, d.file)), rootfs, signal);
  if (!(await stat(join(rootfs, 'usr/bin/busybox')).catch(() => null))) {
    throw new HostpullError('DEMO_BUILD_FAILED', `busybox is missing from ${rootfs} after unpacking busybox-static`);
  }
  await installBusybox(rootfs, signal);
  await finishFilesystem(rootfs, signal);
  const size = await treeSize(rootfs);
  const debs = plan.map((d) => d.file);
  await writeMarker(markerFile, { key, debs, ...size } satisfies BaseMarker);
  return { rootfs, key, debs, ...size, cached: false, ms: performance.now() - t0 };
}
