import { copyFile, mkdir, mkdtemp, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const APPLETS = ['sh', 'echo', 'cat', 'ls', 'id', 'sleep', 'env', 'pwd', 'true', 'kill'];

/**
 * A tiny rootfs in a fresh temp dir: the static busybox with a few applets, /etc/passwd and
 * /etc/group with `app:x:1000:1000` (also a member of `extra`, gid 2000). Returns the temp dir;
 * the rootfs is `<dir>/rootfs`.
 */
export async function makeBusyboxRootfs(prefix = 'hostpull-rt-'): Promise<{ dir: string; rootfs: string }> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  const rootfs = join(dir, 'rootfs');
  await mkdir(join(rootfs, 'bin'), { recursive: true });
  await mkdir(join(rootfs, 'etc'));
  await mkdir(join(rootfs, 'tmp'), { mode: 0o1777 });
  await copyFile('/bin/busybox', join(rootfs, 'bin', 'busybox'));
  for (const a of APPLETS) await symlink('busybox', join(rootfs, 'bin', a));
  await writeFile(join(rootfs, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n');
  await writeFile(join(rootfs, 'etc', 'group'), 'root:x:0:\napp:x:1000:\nextra:x:2000:app\n');
  return { dir, rootfs };
}
