import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, chownSync, lstatSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { lgetxattr } from '../../../src/native/index.js';
import type { Digest } from '../../../src/oci/index.js';
import { createDecompressor } from '../../../src/archive/decompress.js';
import { treeChecksum } from '../../../src/archive/index.js';
import { findConflicts } from '../../../src/rootfs/conflicts.js';
import { applyLayer } from '../../../src/unpack/index.js';
import { writeTar, type RawEntry } from '../../helpers/tar-writer.js';
import { gzip, makeSandbox, type Sandbox } from './sandbox.js';

let sb: Sandbox;
beforeEach(() => {
  sb = makeSandbox();
});
afterEach(() => sb.cleanup());

const at = (p: string) => join(sb.layer, p);
const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}` as Digest;
const zstd = (b: Buffer) => {
  const r = spawnSync('zstd', ['-q', '-c'], { input: b, maxBuffer: 1 << 28 });
  expect(r.status).toBe(0);
  return r.stdout;
};

// A VFS capability (struct vfs_cap_data, revision 2: magic_etc, then permitted/inheritable pairs):
// binary with NULs and bytes >= 0x80, so any string round-trip would corrupt it.
const CAPABILITY = Buffer.alloc(20);
CAPABILITY.writeUInt32LE(0x02000001, 0); // VFS_CAP_REVISION_2 | VFS_CAP_FLAGS_EFFECTIVE
CAPABILITY.writeUInt32LE(0x80002400, 4); // permitted: CAP_NET_BIND_SERVICE, CAP_NET_RAW, CAP_SETFCAP

const tricky: RawEntry[] = [
  { name: './', type: 'dir', mode: 0o755 },
  { name: './etc/', type: 'dir', mode: 0o755, mtime: 1_600_000_000 },
  { name: './etc/localtime', type: 'symlink', linkname: '/usr/share/zoneinfo/UTC' },
  { name: './a/', type: 'dir', mode: 0o750, uid: 1000, gid: 1001, mtime: 1_500_000_000 },
  { name: './a/b/', type: 'dir', mode: 0o555, mtime: 1_500_000_001 },
  { name: './a/b/link', type: 'symlink', linkname: '../../../x', uid: 7, gid: 8, mtime: 1_400_000_000 },
  { name: './bin/', type: 'dir' },
  { name: './bin/su', type: 'file', mode: 0o4755, uid: 0, gid: 0, content: '#!/bin/true\n' },
  { name: './bin/wall', type: 'file', mode: 0o2755, uid: 0, gid: 5, content: 'wall\n' },
  { name: './bin/sgid-owned', type: 'file', mode: 0o6711, uid: 1234, gid: 4321, content: 'x' },
  { name: './bin/ping', type: 'file', mode: 0o755, content: 'ping', pax: { 'SCHILY.xattr.security.capability': CAPABILITY, 'SCHILY.xattr.user.comment': 'hello' } },
  { name: './bin/ping-hard', type: 'hardlink', linkname: './bin/ping' },
  { name: './data', type: 'file', mode: 0o640, uid: 42, gid: 43, mtime: 1_234_567_890, content: Buffer.alloc(70_000, 7) },
  { name: './tmp/', type: 'dir', mode: 0o1777 },
];

describe('valid tricky layers extract exactly', () => {
  it('keeps symlink targets verbatim, hardlinks, special bits, ownership, times and binary xattrs', async () => {
    const tar = writeTar(tricky);
    const result = await sb.apply(tar);

    expect(result.diffId).toBe(sha256(tar));
    expect(result.uncompressedSize).toBe(tar.length);
    expect(result.entries).toBe(tricky.length);
    expect(result.files).toBe(5);
    expect(result.ownedPaths).toEqual(['a/b/link', 'bin/ping', 'bin/ping-hard', 'bin/sgid-owned', 'bin/su', 'bin/wall', 'data', 'etc/localtime']);
    expect(result.whiteouts).toEqual([]);

    expect(readlinkSync(at('etc/localtime'))).toBe('/usr/share/zoneinfo/UTC');
    expect(readlinkSync(at('a/b/link'))).toBe('../../../x');
    const link = lstatSync(at('a/b/link'));
    expect([link.uid, link.gid, link.mtimeMs]).toEqual([7, 8, 1_400_000_000_000]);

    expect(lstatSync(at('bin/su')).mode & 0o7777).toBe(0o4755);
    expect(lstatSync(at('bin/wall')).mode & 0o7777).toBe(0o2755);
    expect(lstatSync(at('bin/wall')).gid).toBe(5);
    // chown clears setuid/setgid: both survive only because chmod runs after chown.
    const sgid = lstatSync(at('bin/sgid-owned'));
    expect([sgid.mode & 0o7777, sgid.uid, sgid.gid]).toEqual([0o6711, 1234, 4321]);
    expect(lstatSync(at('tmp')).mode & 0o7777).toBe(0o1777);

    expect(lstatSync(at('bin/ping-hard')).ino).toBe(lstatSync(at('bin/ping')).ino);
    expect(lstatSync(at('bin/ping')).nlink).toBe(2);
    expect(lgetxattr(at('bin/ping'), 'security.capability')).toEqual(CAPABILITY);
    expect(lgetxattr(at('bin/ping'), 'user.comment')?.toString()).toBe('hello');

    const data = lstatSync(at('data'));
    expect([data.mode & 0o7777, data.uid, data.gid, data.size, data.mtimeMs]).toEqual([0o640, 42, 43, 70_000, 1_234_567_890_000]);
    expect(readFileSync(at('data')).equals(Buffer.alloc(70_000, 7))).toBe(true);

    // Directory modes and times are applied after their children were created.
    const a = lstatSync(at('a'));
    expect([a.mode & 0o7777, a.uid, a.gid, a.mtimeMs]).toEqual([0o750, 1000, 1001, 1_500_000_000_000]);
    const b = lstatSync(at('a/b'));
    expect([b.mode & 0o7777, b.mtimeMs]).toEqual([0o555, 1_500_000_001_000]);
    expect(lstatSync(at('etc')).mtimeMs).toBe(1_600_000_000_000);
  });

  it('a setgid layer root does not leak its group into root-owned entries', async () => {
    chownSync(sb.layer, 0, 5);
    chmodSync(sb.layer, 0o2755);
    await applyLayer(Readable.from([writeTar([{ name: 'd/f', type: 'file', content: 'x' }, { name: 'g', type: 'file', gid: 0 }])]), {
      compression: 'none',
      target: sb.layer,
    });
    expect(lstatSync(at('g')).gid).toBe(0);
    expect(lstatSync(at('d/f')).gid).toBe(0);
  });

  it('the same layer gives the same result through gzip, zstd and uncompressed streams', async () => {
    const tar = writeTar(tricky);
    const listing = async (bytes: Buffer, compression: 'gzip' | 'zstd' | 'none') => {
      const r = await sb.apply(bytes, { compression, expectedDiffId: sha256(tar) });
      return { r, files: readdirSync(sb.layer, { recursive: true }).sort() };
    };
    const none = await listing(tar, 'none');
    const gz = await listing(gzip(tar), 'gzip');
    const zs = await listing(zstd(tar), 'zstd');
    expect(gz).toEqual(none);
    expect(zs).toEqual(none);
  });

  it('chunk boundaries anywhere (1-byte and odd-sized chunks) give the same tree', async () => {
    const tar = writeTar(tricky);
    const chunks: Buffer[] = [];
    for (let i = 0, n = 1; i < tar.length; i += n, n = (n * 7 + 3) % 1300 || 1) chunks.push(tar.subarray(i, i + n));
    const r = await applyLayer(Readable.from(chunks), { compression: 'none', target: sb.layer });
    expect(r.diffId).toBe(sha256(tar));
    expect(readFileSync(at('data')).equals(Buffer.alloc(70_000, 7))).toBe(true);
    expect(lgetxattr(at('bin/ping'), 'security.capability')).toEqual(CAPABILITY);
  });

  it('big files (their content through O_DIRECT) extract byte-exact, with their metadata, and the tree checksum matches a fresh walk', async () => {
    const big = randomBytes(3 * 1024 * 1024 + 17);
    const exact = randomBytes(2 * 1024 * 1024);
    const tar = writeTar([
      { name: './lib/', type: 'dir' },
      { name: './lib/libbig.so', type: 'file', mode: 0o4755, uid: 0, gid: 0, mtime: 1_500_000_000, content: big },
      { name: './lib/small', type: 'file', content: 'small' },
      { name: './lib/exact', type: 'file', mode: 0o600, content: exact },
    ]);
    const chunks: Buffer[] = [];
    for (let i = 0, n = 1; i < tar.length; i += n, n = (n * 31 + 7) % 400_000 || 1) chunks.push(tar.subarray(i, i + n));
    const r = await applyLayer(Readable.from(chunks), { compression: 'none', target: sb.layer });
    expect(readFileSync(at('lib/libbig.so')).equals(big)).toBe(true);
    expect(readFileSync(at('lib/exact')).equals(exact)).toBe(true);
    expect(readFileSync(at('lib/small'), 'utf8')).toBe('small');
    const st = lstatSync(at('lib/libbig.so'));
    expect(st.mode & 0o7777).toBe(0o4755);
    expect(st.mtimeMs).toBe(1_500_000_000_000);
    expect(r.treeChecksum).toBe(treeChecksum(sb.layer));
  });

  it('DIFFID_MISMATCH when the config diff_id is wrong', async () => {
    const tar = writeTar(tricky);
    const wrong = sha256(Buffer.from('other')) as Digest;
    await expect(sb.apply(gzip(tar), { compression: 'gzip', expectedDiffId: wrong })).rejects.toMatchObject({
      code: 'DIFFID_MISMATCH',
      message: expect.stringContaining(sb.layer),
    });
  });

  it('whiteouts become char 0:0 devices and opaque dirs get trusted.overlay.opaque=y', async () => {
    const tar = writeTar([
      { name: 'etc/', type: 'dir' },
      { name: 'etc/.wh.motd', type: 'file' },
      { name: 'var/cache/', type: 'dir' },
      { name: 'var/cache/.wh..wh..opq', type: 'file' },
      { name: 'var/cache/new', type: 'file', content: 'n' },
      { name: 'lib/.wh.gone', type: 'file' },
    ]);
    const r = await sb.apply(tar, { rootless: false });
    const wh = lstatSync(at('etc/motd'));
    expect(wh.isCharacterDevice()).toBe(true);
    expect(wh.rdev).toBe(0);
    expect(lstatSync(at('lib/gone')).isCharacterDevice()).toBe(true);
    expect(lgetxattr(at('var/cache'), 'trusted.overlay.opaque')?.toString()).toBe('y');
    expect(lgetxattr(at('etc'), 'trusted.overlay.opaque')).toBeNull();
    expect(r.whiteouts).toEqual(['etc/.wh.motd', 'lib/.wh.gone', 'var/cache/.wh..wh..opq']);
    // What the layer hides from those below counts as its own for the overlap check.
    expect(r.ownedPaths).toEqual(['etc/motd', 'lib/gone', 'var/cache', 'var/cache/new']);
  });

  it('rootless: opaque dirs use user.overlay.opaque', async () => {
    const tar = writeTar([{ name: 'd/', type: 'dir' }, { name: 'd/.wh..wh..opq', type: 'file' }]);
    await sb.apply(tar, { rootless: true });
    expect(lgetxattr(at('d'), 'user.overlay.opaque')?.toString()).toBe('y');
    expect(lgetxattr(at('d'), 'trusted.overlay.opaque')).toBeNull();
  });

  it('a whiteout does not remove an entry of the same layer, and a later entry replaces a whiteout', async () => {
    const tar = writeTar([
      { name: 'keep', type: 'file', content: 'k' },
      { name: '.wh.keep', type: 'file' },
      { name: '.wh.later', type: 'file' },
      { name: 'later', type: 'file', content: 'l' },
    ]);
    const r = await sb.apply(tar);
    expect(readFileSync(at('keep'), 'utf8')).toBe('k');
    expect(readFileSync(at('later'), 'utf8')).toBe('l');
    expect(r.whiteouts).toEqual([]);
    expect(r.ownedPaths).toEqual(['keep', 'later']);
  });

  it('later entries win: file → dir → file, dir over dir updates metadata, symlink → file', async () => {
    const tar = writeTar([
      { name: 'x', type: 'file', content: 'first' },
      { name: 'x/', type: 'dir', mode: 0o700 },
      { name: 'x/child', type: 'file', content: 'c' },
      { name: 'y/', type: 'dir', mode: 0o700 },
      { name: 'y/inner', type: 'file', content: 'i' },
      { name: 'y', type: 'file', content: 'now a file' },
      { name: 'y', type: 'dir', mode: 0o711, mtime: 1_000_000_000 },
      { name: 'z', type: 'dir', mode: 0o700 },
      { name: 'z/f', type: 'file', content: 'f' },
      { name: 'z', type: 'dir', mode: 0o751 },
    ]);
    const r = await sb.apply(tar);
    expect(lstatSync(at('x')).isDirectory()).toBe(true);
    expect(readFileSync(at('x/child'), 'utf8')).toBe('c');
    const y = lstatSync(at('y'));
    expect([y.isDirectory(), y.mode & 0o7777, y.mtimeMs]).toEqual([true, 0o711, 1_000_000_000_000]);
    expect(readdirSync(at('y'))).toEqual([]);
    expect(lstatSync(at('z')).mode & 0o7777).toBe(0o751);
    expect(readFileSync(at('z/f'), 'utf8')).toBe('f');
    expect(r.ownedPaths).toEqual(['x/child', 'z/f']);
  });

  it('devices are created in a root-owned store', async () => {
    const tar = writeTar([
      { name: 'dev/', type: 'dir' },
      { name: 'dev/null', type: 'char', devmajor: 1, devminor: 3, mode: 0o666 },
      { name: 'dev/loop9', type: 'block', devmajor: 7, devminor: 9, mode: 0o660, gid: 6 },
      { name: 'dev/initctl', type: 'fifo', mode: 0o600 },
    ]);
    await sb.apply(tar, { allowDevices: true });
    const nul = lstatSync(at('dev/null'));
    expect([nul.isCharacterDevice(), nul.rdev, nul.mode & 0o7777]).toEqual([true, (1 << 8) | 3, 0o666]);
    const loop = lstatSync(at('dev/loop9'));
    expect([loop.isBlockDevice(), loop.rdev, loop.gid]).toEqual([true, (7 << 8) | 9, 6]);
    expect(lstatSync(at('dev/initctl')).isFIFO()).toBe(true);
  });

  it('a package that hides another package inside its prefix conflicts with it, in either order', async () => {
    // TOOLS owns /opt/tools, JAVA /opt/tools/java. Stacked above JAVA, TOOLS' whiteout (or opaque
    // marker) would blank JAVA out; the overlap check must see what TOOLS hides.
    const java = await sb.apply(
      writeTar([
        { name: 'opt/tools/java/bin/java', type: 'file', content: 'java' },
      ]),
      { claim: { code: 'JAVA1.0', prefix: '/opt/tools/java/', allowSetuid: false } },
    );
    for (const hide of ['opt/tools/.wh.java', 'opt/tools/.wh..wh..opq']) {
      const other = makeSandbox();
      try {
        const tools = await other.apply(writeTar([{ name: 'opt/tools/', type: 'dir' }, { name: hide, type: 'file' }, { name: 'opt/tools/bin/t', type: 'file', content: 't' }]), {
          claim: { code: 'TOOLS1.0', prefix: '/opt/tools/', allowSetuid: false },
        });
        for (const order of [[{ name: 'TOOLS1.0', paths: tools.ownedPaths }, { name: 'JAVA1.0', paths: java.ownedPaths }], [{ name: 'JAVA1.0', paths: java.ownedPaths }, { name: 'TOOLS1.0', paths: tools.ownedPaths }]]) {
          expect(findConflicts(order).map((c) => c.path), hide).toEqual([hide.endsWith('opq') ? '/opt/tools' : '/opt/tools/java']);
        }
      } finally {
        other.cleanup();
      }
    }
  });

  it('a package layer extracts inside its prefix; neutral directories above it are created', async () => {
    const tar = writeTar([
      { name: './', type: 'dir', mode: 0o755 },
      { name: './opt/', type: 'dir', mode: 0o755 },
      { name: './opt/jdk-11.0/', type: 'dir', mode: 0o750, uid: 7 },
      { name: './opt/jdk-11.0/bin/java', type: 'file', mode: 0o755, content: 'java' },
      { name: './opt/jdk-11.0/.wh.old', type: 'file' },
    ]);
    const r = await sb.apply(tar, { claim: { code: 'JDK11.0', prefix: '/opt/jdk-11.0/', allowSetuid: false } });
    expect(r.ownedPaths).toEqual(['opt/jdk-11.0/bin/java', 'opt/jdk-11.0/old']);
    expect(lstatSync(sb.layer).mode & 0o777).toBe(0o755);
    const opt = lstatSync(at('opt'));
    expect([opt.mode & 0o777, opt.uid]).toEqual([0o755, 0]);
    expect(lstatSync(at('opt/jdk-11.0')).mode & 0o777).toBe(0o750);
    expect(lstatSync(at('opt/jdk-11.0/old')).isCharacterDevice()).toBe(true);
    expect(r.footprint).toMatchObject({ claimRoot: 'opt/jdk-11.0', neutralDirs: ['opt'], devices: 0, setidCount: 0 });
  });

  it('GNU long names and links (tar --format=gnu) and PAX long names round-trip', async () => {
    const long = `${'d'.repeat(150)}/${'f'.repeat(200)}`;
    const target = `${'t'.repeat(180)}`;
    const tar = writeTar([
      { name: long, type: 'file', content: 'long' },
      { name: 'l', type: 'symlink', linkname: target },
    ]);
    await sb.apply(tar);
    expect(readFileSync(at(long), 'utf8')).toBe('long');
    expect(readlinkSync(at('l'))).toBe(target);

    // The same through GNU tar's own GNU format (typeflag 'L'/'K' records).
    const src = join(sb.dir, 'gnu-src');
    const mk = spawnSync('sh', ['-c', `mkdir -p "${src}/${'d'.repeat(150)}" && echo gnu > "${src}/${long}" && ln -s ${target} "${src}/l"`]);
    expect(mk.status).toBe(0);
    const gnu = spawnSync('tar', ['--format=gnu', '-C', src, '-cf', '-', '.'], { maxBuffer: 1 << 24 });
    expect(gnu.status).toBe(0);
    await sb.apply(gnu.stdout);
    expect(readFileSync(at(long), 'utf8')).toBe('gnu\n');
    expect(readlinkSync(at('l'))).toBe(target);
  });

  it('aborting through the signal stops with ABORTED and destroys the source', async () => {
    const source = new PassThrough();
    source.write(writeTar([{ name: 'a', type: 'file', content: 'x' }]).subarray(0, 1024));
    const ac = new AbortController();
    const p = applyLayer(source, { compression: 'none', target: sb.layer, signal: ac.signal });
    setTimeout(() => ac.abort(), 20);
    await expect(p).rejects.toMatchObject({ code: 'ABORTED' });
    expect(source.destroyed).toBe(true);
  });

  it('createDecompressor zstd streams large input both ways (backpressure)', async () => {
    const big = Buffer.alloc(8 * 1024 * 1024);
    for (let i = 0; i < big.length; i += 4096) big.writeUInt32LE(i, i);
    const d = createDecompressor('zstd');
    const out: Buffer[] = [];
    d.on('data', (c: Buffer) => out.push(c));
    const done = new Promise((resolve, reject) => {
      d.on('end', resolve);
      d.on('error', reject);
    });
    d.end(zstd(big));
    await done;
    expect(Buffer.concat(out).equals(big)).toBe(true);
  });
});
