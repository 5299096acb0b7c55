// bench/fuse-overhead: the same read-only passthrough as passthrough.c, served by hostpull's own
// FUSE server (src/lazy/fuse-session.ts, as the lazy helper mounts its views): what that
// JavaScript hop costs a reader when no span has to be fetched.
// With --passthrough, every file is opened with FUSE passthrough to the source file (what the lazy
// helper does for a file whose spans are all in): the kernel reads it without asking this process.
//   node passthrough-session.mjs [--passthrough] SOURCE-DIR MOUNTPOINT   (prints "mounted" on stderr; SIGTERM unmounts)
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { mountFuse } from '../../dist/lazy/fuse-mount.js';

const args = process.argv.slice(2);
const passthrough = args[0] === '--passthrough';
const [source, mountpoint] = passthrough ? args.slice(1) : args;
const under = (p) => path.join(source, p);
const errno = (e) => -(os.constants.errno[e.code] ?? os.constants.errno.EIO);
const stat = (s) => ({ mode: s.mode, uid: s.uid, gid: s.gid, size: s.size, nlink: s.nlink, ino: s.ino, blksize: 4096, blocks: s.blocks, atime: s.atime, mtime: s.mtime, ctime: s.ctime });

const ops = {
  getattr: (p, cb) => fs.lstat(under(p), (e, s) => (e ? cb(errno(e)) : cb(0, stat(s)))),
  readdir: (p, cb) => fs.readdir(under(p), (e, names) => (e ? cb(errno(e)) : cb(0, names))),
  readlink: (p, cb) => fs.readlink(under(p), (e, target) => (e ? cb(errno(e)) : cb(0, target))),
  open: (p, flags, cb) => ((flags & 3) !== 0 ? cb(-os.constants.errno.EROFS) : fs.open(under(p), 'r', (e, fd) => (e ? cb(errno(e)) : cb(0, fd)))),
  read: (p, fd, buf, len, pos, cb) => fs.read(fd, buf, 0, len, pos, (e, n) => cb(e ? errno(e) : n)),
  release: (p, fd, cb) => fs.close(fd, () => cb(0)),
  statfs: (p, cb) => cb(0, { bsize: 4096, frsize: 4096, blocks: 0, bfree: 0, bavail: 0, files: 0, ffree: 0, namemax: 255 }),
  ...(passthrough ? { passthrough: (p) => new Promise((resolve) => fs.open(under(p), 'r', (e, fd) => resolve(e ? undefined : fd))) } : {}),
};
try {
  const fuse = await mountFuse(mountpoint, ops, { opTimeoutMs: 60_000 });
  console.error('mounted');
  process.once('SIGTERM', () => void fuse.unmount().then(() => process.exit(0)));
} catch (err) {
  console.error(`cannot mount ${mountpoint}: ${err.message}`);
  process.exit(1);
}
