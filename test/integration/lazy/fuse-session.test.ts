/**
 * hostpull's own FUSE server (src/lazy/fuse-session.ts, native/src/fuse_channel.c) on a real
 * /dev/fuse mount, read by real processes (cat, stat, ls, sha256sum): the kernel's view of what
 * the handlers answer, the ETIMEDOUT bound, negative lookups the kernel keeps, reads answered on
 * the native thread from lent spans, lookups, stats, symlinks and opens answered there from the
 * names it is given, and passthrough to a local copy. Readers are child processes: this process's event loop answers their requests.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { open as openCallback } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { constants } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import type { FuseHandlers, FuseStat, MountNode, NativeAnswers } from '../../../src/lazy/fuse-handlers.js';
import { FUSE_FSNAME, mountFuse, type MountedFuse } from '../../../src/lazy/fuse-mount.js';
import type { Logger } from '../../../src/log.js';
import { constants as native, mount, umount2 } from '../../../src/native/index.js';
import { parseMountInfo } from '../../../src/rootfs/mountinfo.js';
import { useTempDir } from '../../helpers/tmp.js';

const E = constants.errno;
const run = promisify(execFile);
const openFd = promisify(openCallback);

/**
 * The mounts at `dir`, read without touching `dir` itself (a stat of the mount point would be a
 * request to this process, which would be blocked in that very stat).
 */
async function mountsAt(dir: string) {
  return parseMountInfo(await readFile('/proc/self/mountinfo', 'utf8')).filter((m) => m.mountPoint === dir);
}

/** What a reader process printed, or how it failed. */
async function sh(script: string): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run('sh', ['-c', script], { encoding: 'utf8' });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

interface FakeNode {
  ino: number;
  children?: string[];
  data?: Buffer;
  link?: string;
}

function stat(n: FakeNode): FuseStat {
  const time = new Date(1_600_000_000_000);
  const mode = n.children ? 0o040755 : n.link !== undefined ? 0o120777 : 0o100644;
  const size = n.data?.length ?? n.link?.length ?? 0;
  return { mode, uid: 0, gid: 0, size, nlink: n.children ? 2 : 1, ino: n.ino, blksize: 4096, blocks: Math.ceil(size / 512), atime: time, mtime: time, ctime: time };
}

/** Directory `dir` of a fake tree and the names in it, as NativeAnswers lists them; the paths in `passThrough` may be passed through. */
function namesOf(nodes: Record<string, FakeNode>, dir: string, passThrough: string[] = []): MountNode[] {
  const node = (path: string): MountNode => ({ path, stat: stat(nodes[path]!), link: nodes[path]!.link, mayPassThrough: passThrough.includes(path) });
  const children = nodes[dir]?.children;
  return children ? [node(dir), ...children.map((name) => node(dir === '/' ? `/${name}` : `${dir}/${name}`))] : [];
}

/** An in-memory tree in the handlers' shape, counting the calls each path gets. */
function fakeHandlers(nodes: Record<string, FakeNode>, extra: Partial<FuseHandlers> = {}) {
  const calls: string[] = [];
  const handlers: FuseHandlers = {
    getattr(path, cb) {
      calls.push(`getattr ${path}`);
      const n = nodes[path];
      if (n) cb(0, stat(n));
      else cb(-E.ENOENT);
    },
    readdir(path, cb) {
      cb(0, nodes[path]!.children!);
    },
    readlink(path, cb) {
      calls.push(`readlink ${path}`);
      cb(0, nodes[path]!.link!);
    },
    open(path, _flags, cb) {
      calls.push(`open ${path}`);
      cb(0, 1);
    },
    read(path, _fd, buf, len, pos, cb) {
      calls.push(`read ${path}`);
      // Answered later, as a span fetch would be.
      setImmediate(() => cb(nodes[path]!.data!.copy(buf, 0, pos, pos + len)));
    },
    release(_path, _fd, cb) {
      cb(0);
    },
    statfs(path, cb) {
      calls.push(`statfs ${path}`);
      cb(0, { bsize: 4096, frsize: 4096, blocks: 0, bfree: 0, bavail: 0, files: Object.keys(nodes).length, ffree: 0, namemax: 255 });
    },
    ...extra,
  };
  return { handlers, calls };
}

const big = Buffer.alloc(3 * 1024 * 1024 + 123);
for (let i = 0; i < big.length; i++) big[i] = (i * 7919) % 251;

const TREE: Record<string, FakeNode> = {
  '/': { ino: 1, children: ['opt'] },
  '/opt': { ino: 2, children: ['small.txt', 'big.bin', 'link', 'slow'] },
  '/opt/small.txt': { ino: 3, data: Buffer.from('hello from fuse\n') },
  '/opt/big.bin': { ino: 4, data: big },
  '/opt/link': { ino: 5, link: 'small.txt' },
  '/opt/slow': { ino: 6, data: Buffer.from('never answered\n') },
};

describe('hostpull FUSE server on /dev/fuse', () => {
  const tmp = useTempDir('fuse-session');
  let mounted: MountedFuse | undefined;

  afterEach(async () => {
    await mounted?.unmount();
    mounted = undefined;
  });

  it('serves the handlers read-only: listing, attributes, symlinks, file bytes; the kernel keeps missing names', async () => {
    const dir = await tmp();
    const mnt = join(dir, 'mnt');
    await mkdir(mnt);
    const { handlers, calls } = fakeHandlers(TREE);
    mounted = await mountFuse(mnt, handlers, { opTimeoutMs: 10_000 });

    const [mount] = await mountsAt(mnt);
    expect(mount).toMatchObject({ fsType: 'fuse.hostpull', source: FUSE_FSNAME });
    expect(mount!.options.split(',')).toEqual(expect.arrayContaining(['ro', 'nosuid', 'nodev']));

    expect((await sh(`ls -a ${mnt}/opt`)).stdout.split('\n').filter(Boolean)).toEqual(['.', '..', 'big.bin', 'link', 'slow', 'small.txt']);
    expect((await sh(`stat -c '%s %a %F %Y %i' ${mnt}/opt/big.bin ${mnt}/opt/link`)).stdout).toBe(`${big.length} 644 regular file 1600000000 4\n9 777 symbolic link 1600000000 5\n`);
    expect((await sh(`cat ${mnt}/opt/link`)).stdout).toBe('hello from fuse\n');
    // More than one maximal read (1 MiB), and an odd tail.
    expect((await sh(`sha256sum < ${mnt}/opt/big.bin`)).stdout.split(' ')[0]).toBe(createHash('sha256').update(big).digest('hex'));
    expect((await sh(`dd if=${mnt}/opt/big.bin bs=1000 skip=2000 count=3 status=none | od -An -tu1 | head -1`)).stdout.trim().split(/\s+/).map(Number)).toEqual(
      [...big.subarray(2_000_000, 2_000_016)],
    );

    // A missing name: ENOENT to the reader, asked once; the kernel answers the second stat itself.
    for (let i = 0; i < 2; i++) expect((await sh(`stat ${mnt}/opt/nope`)).code).not.toBe(0);
    expect(calls.filter((c) => c === 'getattr /opt/nope')).toHaveLength(1);

    const write = await sh(`echo x > ${mnt}/opt/new`);
    expect(write.code).not.toBe(0);
    expect(write.stderr).toMatch(/Read-only file system/);
  });

  it('a request its handler never answers gets ETIMEDOUT within the bound, and the mount keeps serving', async () => {
    const dir = await tmp();
    const mnt = join(dir, 'mnt');
    await mkdir(mnt);
    const { handlers } = fakeHandlers(TREE);
    const read = handlers.read.bind(handlers);
    handlers.read = (path, fd, buf, len, pos, cb) => (path === '/opt/slow' ? undefined : read(path, fd, buf, len, pos, cb));
    mounted = await mountFuse(mnt, handlers, { opTimeoutMs: 500 });
    const started = Date.now();
    const r = await sh(`cat ${mnt}/opt/slow`);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/timed out/i);
    expect(Date.now() - started).toBeLessThan(5000);
    expect((await sh(`cat ${mnt}/opt/small.txt`)).stdout).toBe('hello from fuse\n');
  });

  it('answers reads on its native thread from the spans lent to it; a span taken back is read through the handler again', async () => {
    const dir = await tmp();
    const mnt = join(dir, 'mnt');
    await mkdir(mnt);
    // A "tar" of five 1 MiB spans: big.bin's bytes (but not the handler's: flipped) from offset 0,
    // small.txt's in span 4, which holds other bytes and is taken back before anything reads it.
    const MiB = 1024 * 1024;
    const different = Buffer.from(big.map((b) => b ^ 0xff));
    const tar = Buffer.alloc(5 * MiB, 'X');
    different.copy(tar, 0);
    const sizes = new Float64Array(7).fill(-1);
    const offsets = new Float64Array(7);
    sizes[4] = big.length;
    sizes[3] = TREE['/opt/small.txt']!.data!.length;
    offsets[3] = 4 * MiB;
    let lend: ((index: number, bytes: Buffer | null) => void) | undefined;
    const served: Array<{ ino: number; size: number }> = [];
    const native: NativeAnswers = {
      files: { offsets, sizes },
      spanStarts: Float64Array.from([0, 1, 2, 3, 4, 5].map((k) => k * MiB)),
      watchSpans(listener) {
        lend = listener;
        for (let k = 0; k < 5; k++) listener(k, tar.subarray(k * MiB, (k + 1) * MiB));
        return () => (lend = undefined);
      },
      served: (ino, _offset, size) => served.push({ ino, size }),
      names: (dir) => namesOf(TREE, dir),
    };
    const { handlers, calls } = fakeHandlers(TREE, { native });
    mounted = await mountFuse(mnt, handlers, { opTimeoutMs: 10_000 });
    lend!(4, null);

    const sum = (b: Buffer) => createHash('sha256').update(b).digest('hex');
    expect((await sh(`sha256sum < ${mnt}/opt/big.bin`)).stdout.split(' ')[0]).toBe(sum(different));
    expect((await sh(`dd if=${mnt}/opt/big.bin bs=1 skip=${big.length - 3} status=none | od -An -tu1`)).stdout.trim().split(/\s+/).map(Number)).toEqual([...different.subarray(-3)]);
    expect((await sh(`cat ${mnt}/opt/small.txt`)).stdout).toBe('hello from fuse\n');
    expect(calls.filter((c) => c.startsWith('read '))).toEqual(['read /opt/small.txt']);
    // The handlers hear of every read the thread answered (on the event loop, after the fact).
    for (let i = 0; i < 50 && served.reduce((n, s) => n + s.size, 0) < big.length; i++) await new Promise((r) => setTimeout(r, 20));
    expect(served.every((s) => s.ino === 4)).toBe(true);
    expect(served.reduce((n, s) => n + s.size, 0)).toBeGreaterThanOrEqual(big.length);
  });

  it('answers lookups, attributes, symlinks, plain opens and statfs on its native thread from what it is given, as the handlers would', async () => {
    const dir = await tmp();
    const plain = join(dir, 'plain');
    const named = join(dir, 'named');
    await mkdir(plain);
    await mkdir(named);
    const copy = join(dir, 'copy-of-big');
    await writeFile(copy, big);
    // A local copy of big.bin only, as LocalCopies offers one for a file large enough.
    const copies = (offered: string[]) => async (path: string) => {
      offered.push(path);
      return path === '/opt/big.bin' ? openFd(copy, 'r') : undefined;
    };
    const asked: string[] = [];
    // No file layout and no span: every read still goes to the handlers.
    const native: NativeAnswers = {
      files: { offsets: new Float64Array(7), sizes: new Float64Array(7).fill(-1) },
      spanStarts: Float64Array.from([0]),
      watchSpans: () => () => undefined,
      served: () => undefined,
      names: (dir) => {
        asked.push(dir);
        return namesOf(TREE, dir, ['/opt/big.bin']);
      },
    };
    const jsOnly = fakeHandlers(TREE, { passthrough: copies([]) });
    const plainMount = await mountFuse(plain, jsOnly.handlers, { opTimeoutMs: 10_000 });
    try {
      const offered: string[] = [];
      const { handlers, calls } = fakeHandlers(TREE, { native, passthrough: copies(offered) });
      mounted = await mountFuse(named, handlers, { opTimeoutMs: 10_000 });

      const look = (mnt: string) =>
        sh(
          `cd ${mnt} && stat -c '%n %s %a %F %Y %i %h %u %g' . opt opt/small.txt opt/big.bin opt/link && readlink opt/link && cat opt/link && ls -a opt && stat -f -c '%S %b %c %l' . opt && stat opt/nope opt/small.txt/x; echo $?`,
        );
      const expected = await look(plain);
      expect(expected.stdout).toContain(`opt/big.bin ${big.length} 644 regular file 1600000000 4 1 0 0\n`);
      expect(expected.stdout).toMatch(/hello from fuse\n\.\n\.\.\nbig\.bin\nlink\nslow\nsmall\.txt\n4096 0 6 255\n4096 0 6 255\n1\n$/);
      const got = await look(named);
      expect(got.stdout).toBe(expected.stdout.replaceAll(plain, named));
      expect(got.stderr).toBe(expected.stderr.replaceAll(plain, named));
      expect((await sh(`sha256sum < ${named}/opt/big.bin`)).stdout.split(' ')[0]).toBe(createHash('sha256').update(big).digest('hex'));

      // The handlers heard of the first lookup in /opt (which gave the thread its names), of the
      // listing (whose entries they stat), of the reads and of the file that may be passed
      // through; not of the missing name, the symlink, the opens of the other files, or the
      // statfs calls (the session asked for the figures once, at the mount, for the thread).
      expect(calls.filter((c) => !c.startsWith('read ') && !c.startsWith('getattr '))).toEqual(['statfs /', 'open /opt/big.bin']);
      expect(calls).not.toContain('getattr /opt/nope');
      expect(calls.filter((c) => c !== 'statfs /')[0]).toBe('getattr /opt/small.txt');
      expect(asked).toEqual(['/', '/opt']);
      expect(calls).toContain('read /opt/small.txt');
      expect(offered).toEqual(['/opt/big.bin']);
      // Where nothing answers on the thread, the handlers hear of every name.
      expect(jsOnly.calls).toEqual(expect.arrayContaining(['getattr /opt/small.txt', 'getattr /opt/nope', 'readlink /opt/link', 'open /opt/small.txt']));
      expect(jsOnly.calls.filter((c) => c === 'statfs /')).toHaveLength(2);
    } finally {
      await plainMount.unmount();
    }
  });

  it('names the native thread refuses (an inode 0) leave every lookup to the handlers, with a warning', async () => {
    const dir = await tmp();
    const mnt = join(dir, 'mnt');
    await mkdir(mnt);
    const native: NativeAnswers = {
      files: { offsets: new Float64Array(7), sizes: new Float64Array(7).fill(-1) },
      spanStarts: Float64Array.from([0]),
      watchSpans: () => () => undefined,
      served: () => undefined,
      names: (d) => namesOf(TREE, d).map((n) => (n.path === '/opt' ? { ...n, stat: { ...n.stat, ino: 0 } } : n)),
    };
    const { handlers, calls } = fakeHandlers(TREE, { native });
    const warnings: string[] = [];
    const logger = { warn: (o: { err: string }) => warnings.push(o.err) } as unknown as Logger;
    mounted = await mountFuse(mnt, handlers, { opTimeoutMs: 10_000, logger });
    expect(warnings.join('\n')).toMatch(/lookups are answered on the event loop.*inode 0/);
    expect((await sh(`cat ${mnt}/opt/link`)).stdout).toBe('hello from fuse\n');
    expect(calls).toEqual(expect.arrayContaining(['getattr /opt', 'getattr /opt/link', 'readlink /opt/link', 'open /opt/small.txt']));
  });

  it('passes a file with a local copy through to it: the kernel reads the copy, the server sees no read', async () => {
    const dir = await tmp();
    const mnt = join(dir, 'mnt');
    await mkdir(mnt);
    // The copy differs from what the read handler answers, so the reader shows which one it got.
    const copy = join(dir, 'copy-of-big');
    const different = Buffer.from(big.map((b) => b ^ 0xff));
    await writeFile(copy, different);
    const offered: string[] = [];
    const { handlers, calls } = fakeHandlers(TREE, {
      passthrough: async (path) => {
        offered.push(path);
        return path === '/opt/big.bin' ? openFd(copy, 'r') : undefined;
      },
    });
    mounted = await mountFuse(mnt, handlers, { opTimeoutMs: 10_000 });

    const sum = (b: Buffer) => createHash('sha256').update(b).digest('hex');
    expect((await sh(`sha256sum < ${mnt}/opt/big.bin`)).stdout.split(' ')[0]).toBe(sum(different));
    expect((await sh(`cat ${mnt}/opt/small.txt`)).stdout).toBe('hello from fuse\n');
    // Opened again: decided once per file, not asked again.
    expect((await sh(`head -c 4 ${mnt}/opt/big.bin | od -An -tu1`)).stdout.trim().split(/\s+/).map(Number)).toEqual([...different.subarray(0, 4)]);
    expect(offered).toEqual(['/opt/big.bin', '/opt/small.txt']);
    expect(calls.filter((c) => c.startsWith('read '))).toEqual(['read /opt/small.txt']);
    expect((await readFile(copy)).equals(different)).toBe(true);
  });

  it('a copy the kernel refuses as a backing file (on an overlay) is served instead, and passthrough stops for the mount', async () => {
    const dir = await tmp();
    const mnt = join(dir, 'mnt');
    await mkdir(mnt);
    // The copy sits on an overlay: one level of stacking already, as deep as this mount allows.
    for (const d of ['lower', 'lower2', 'ovl']) await mkdir(join(dir, d));
    const different = Buffer.from(big.map((b) => b ^ 0xff));
    await writeFile(join(dir, 'lower', 'copy-of-big'), different);
    await writeFile(join(dir, 'plain-copy'), different);
    mount('overlay', join(dir, 'ovl'), 'overlay', native.MS_RDONLY, `lowerdir=${join(dir, 'lower')}:${join(dir, 'lower2')}`);
    try {
      const offered: string[] = [];
      const { handlers, calls } = fakeHandlers(TREE, {
        passthrough: async (path) => {
          offered.push(path);
          return openFd(path === '/opt/big.bin' ? join(dir, 'ovl', 'copy-of-big') : join(dir, 'plain-copy'), 'r');
        },
      });
      const warnings: string[] = [];
      const logger = { warn: (o: { err: string }) => warnings.push(o.err) } as unknown as Logger;
      mounted = await mountFuse(mnt, handlers, { opTimeoutMs: 10_000, logger });
      const sum = (b: Buffer) => createHash('sha256').update(b).digest('hex');
      // Served by the handler: its bytes, not the copy's.
      expect((await sh(`sha256sum < ${mnt}/opt/big.bin`)).stdout.split(' ')[0]).toBe(sum(big));
      expect(warnings.join('\n')).toMatch(/refused its local copy as a backing file.*served by hostpull from now on/);
      expect((await sh(`cat ${mnt}/opt/small.txt`)).stdout).toBe('hello from fuse\n');
      expect(offered).toEqual(['/opt/big.bin']);
      expect(calls.filter((c) => c.startsWith('read '))).toEqual(expect.arrayContaining(['read /opt/big.bin', 'read /opt/small.txt']));
    } finally {
      await mounted?.unmount();
      mounted = undefined;
      umount2(join(dir, 'ovl'), native.MNT_DETACH);
    }
  });

  it('unmounting detaches the mount and ends the connection', async () => {
    const dir = await tmp();
    const mnt = join(dir, 'mnt');
    await mkdir(mnt);
    const { handlers } = fakeHandlers(TREE);
    const m = await mountFuse(mnt, handlers, { opTimeoutMs: 10_000 });
    expect((await sh(`cat ${mnt}/opt/small.txt`)).stdout).toBe('hello from fuse\n');
    await m.unmount();
    await m.unmount(); // idempotent
    expect(await mountsAt(mnt)).toEqual([]);
    await m.ended;
  });
});
