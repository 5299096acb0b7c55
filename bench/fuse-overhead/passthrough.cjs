// bench/fuse-overhead: the same read-only passthrough as passthrough.c, through fuse-native (each
// request handed to this process's event loop, as hostpull's lazy helper does), with the lazy
// mounts' options: what the JavaScript hop costs a reader when no span has to be fetched.
//   node passthrough.cjs SOURCE-DIR MOUNTPOINT      (prints "mounted" on stderr; SIGTERM unmounts)
'use strict';
const { createRequire } = require('node:module');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const Fuse = createRequire(path.join(__dirname, '..', '..', 'package.json'))('fuse-native');
const [source, mountpoint] = process.argv.slice(2);
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
  getxattr: (p, name, position, cb) => cb(0, null),
  listxattr: (p, cb) => cb(0, []),
};
const fuse = new Fuse(mountpoint, ops, { allowOther: true, defaultPermissions: true, kernelCache: true, entryTimeout: 3600, attrTimeout: 3600, fsname: 'hostpull-bench', timeout: 60_000 });
fuse.mount((err) => {
  if (err) {
    console.error(`cannot mount ${mountpoint}: ${err.message}`);
    process.exit(1);
  }
  console.error('mounted');
});
process.once('SIGTERM', () => fuse.unmount(() => process.exit(0)));
