import { existsSync, lstatSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { applyLayer, ApplyWorkers } from '../../../src/unpack/index.js';
import { tarEntry, writeTar, type RawEntry } from '../../helpers/tar-writer.js';
import { BUILT_APPLY_WORKER, expectRefused, gzip, makeSandbox, type Applier, type Sandbox } from './sandbox.js';

// One test per attack, named after the advisory where one exists. Each builds its archive from
// raw tar headers, applies it as root, and checks the error code, that the message names the
// entry's layer dir, and that the sentinel tree next to the layer is byte-identical. The whole
// corpus runs twice: with applyLayer on the test's thread and with ApplyWorkers, which a pull
// uses for big layers.

const workers = new ApplyWorkers({ entry: BUILT_APPLY_WORKER, size: 1 });
afterAll(() => workers.close());
const appliers: Array<[string, Applier]> = [
  ['on the calling thread', applyLayer],
  ['in a worker thread', (source, options) => workers.apply(source, options)],
];

/** A package that owns /opt/pkg. */
const pkg = { code: 'PKG1.0', prefix: 'opt/pkg', allowSetuid: false };
const file = (name: string, content = 'pwned\n', extra: Partial<RawEntry> = {}): RawEntry => ({ name, type: 'file', content, ...extra });
const dir = (name: string): RawEntry => ({ name, type: 'dir' });
const symlink = (name: string, linkname: string): RawEntry => ({ name, type: 'symlink', linkname });
const hardlink = (name: string, linkname: string): RawEntry => ({ name, type: 'hardlink', linkname });

describe.each(appliers)('applied %s', (_where, apply) => {
  let sb: Sandbox;
  beforeEach(() => {
    sb = makeSandbox(apply);
  });
  afterEach(() => sb.cleanup());

  describe('symlink and directory cache poisoning (node-tar)', () => {
    it('GHSA-3jfq-g458-7qm9: a symlink replacing a directory of the same name is not written through', async () => {
      const tar = writeTar([dir('a'), symlink('a', sb.outside), file('a/secret.txt')]);
      await expectRefused(sb, () => sb.apply(tar), 'LAYER_UNSAFE', /"a" is a symlink/);
    });

    it('CVE-2021-32803: nested directory replaced by a symlink, then a file below it', async () => {
      const tar = writeTar([dir('x/'), dir('x/y/'), symlink('x/y', '../../outside'), file('x/y/secret.txt')]);
      await expectRefused(sb, () => sb.apply(tar), 'LAYER_UNSAFE', /symlink/);
    });

    it('GHSA-r628-mhmh-qjhw: a symlink named with a trailing slash is refused as ambiguous', async () => {
      const tar = writeTar([dir('a/'), { ...symlink('a/', sb.outside) }, file('a/sub/passwd')]);
      await expectRefused(sb, () => sb.apply(tar), 'LAYER_AMBIGUOUS', /ends with "\/"/);
    });

    it('GHSA-9r2w-394v-53qc: a symlink named like a cached directory via "./" and "//" spellings', async () => {
      const tar = writeTar([dir('./d/e/'), symlink('d//./e', sb.outside), file('./d/e/secret.txt')]);
      await expectRefused(sb, () => sb.apply(tar), 'LAYER_UNSAFE', /symlink/);
    });

    it('GHSA-qq89-hq3f-393p: unicode-equivalent names are distinct paths and never followed', async () => {
      const nfc = 'caf\u00e9';
      const nfd = 'cafe\u0301';
      const tar = writeTar([dir(nfc), symlink(nfd, sb.outside), file(`${nfd}/secret.txt`)]);
      await expectRefused(sb, () => sb.apply(tar), 'LAYER_UNSAFE', /symlink/);
    });

    it('GHSA-5955-9wpr-37jh: drive-relative names with ".." are refused', async () => {
      const tar = writeTar([file('C:../../outside/secret.txt')]);
      await expectRefused(sb, () => sb.apply(tar), 'LAYER_UNSAFE', /"\.\."/);
    });

    it('CVE-2021-32804: absolute names with repeated slashes are refused, not stripped', async () => {
      const tar = writeTar([file(`////${sb.outside.slice(1)}/secret.txt`)]);
      await expectRefused(sb, () => sb.apply(tar), 'LAYER_UNSAFE', /absolute/);
    });
  });

  describe('containerd/umoci breakouts', () => {
    it('umoci CVE-2021-29136: a "." symlink cannot replace the layer root', async () => {
      const tar = writeTar([symlink('.', sb.outside), file('secret.txt')]);
      await expectRefused(sb, () => sb.apply(tar), 'LAYER_UNSAFE', /layer root/);
    });

    it('umoci CVE-2021-29136: "./" symlink and "/" symlink are refused', async () => {
      await expectRefused(sb, () => sb.apply(writeTar([symlink('./', sb.outside)])), 'LAYER_AMBIGUOUS');
      await expectRefused(sb, () => sb.apply(writeTar([symlink('/', sb.outside)])), 'LAYER_AMBIGUOUS');
      await expectRefused(sb, () => sb.apply(writeTar([symlink('.', sb.outside)])), 'LAYER_UNSAFE');
      await expectRefused(sb, () => sb.apply(writeTar([hardlink('.', 'x')])), 'LAYER_UNSAFE');
    });

    it('symlink parent with an absolute target, then a write through it', async () => {
      const tar = writeTar([symlink('etc', sb.outside), file('etc/secret.txt')]);
      await expectRefused(sb, () => sb.apply(tar), 'LAYER_UNSAFE', /parent "etc" is a symlink/);
    });

    it('symlink parent with a climbing relative target, then a write through it', async () => {
      const tar = writeTar([symlink('up', '../outside'), file('up/sub/passwd')]);
      await expectRefused(sb, () => sb.apply(tar), 'LAYER_UNSAFE');
    });

    it('a directory entry below a symlink parent', async () => {
      const tar = writeTar([symlink('up', '../outside'), dir('up/newdir')]);
      await expectRefused(sb, () => sb.apply(tar), 'LAYER_UNSAFE');
      expect(existsSync(join(sb.outside, 'newdir'))).toBe(false);
    });

    it('hardlink to a file outside the layer ("../")', async () => {
      const tar = writeTar([hardlink('h', '../outside/secret.txt')]);
      await expectRefused(sb, () => sb.apply(tar), 'LAYER_UNSAFE', /hardlink target/);
    });

    it('hardlink to an absolute path', async () => {
      const tar = writeTar([hardlink('h', join(sb.outside, 'secret.txt'))]);
      await expectRefused(sb, () => sb.apply(tar), 'LAYER_UNSAFE', /absolute/);
    });

    it('hardlink via a symlink to an outside file', async () => {
      const tar = writeTar([symlink('l', join(sb.outside, 'secret.txt')), hardlink('h', 'l')]);
      await expectRefused(sb, () => sb.apply(tar), 'LAYER_UNSAFE', /not a regular file extracted earlier/);
    });

    it('hardlink via a symlinked directory', async () => {
      const tar = writeTar([symlink('d', sb.outside), hardlink('h', 'd/secret.txt')]);
      await expectRefused(sb, () => sb.apply(tar), 'LAYER_UNSAFE');
    });

    it('hardlink to a directory or to a path not extracted', async () => {
      await expectRefused(sb, () => sb.apply(writeTar([dir('d'), hardlink('h', 'd')])), 'LAYER_UNSAFE');
      await expectRefused(sb, () => sb.apply(writeTar([hardlink('h', 'absent')])), 'LAYER_UNSAFE');
    });

    it('hardlink to a file that a later symlink replaced', async () => {
      const tar = writeTar([file('f', 'x'), symlink('f', join(sb.outside, 'secret.txt')), hardlink('h', 'f')]);
      await expectRefused(sb, () => sb.apply(tar), 'LAYER_UNSAFE');
    });

    it('hardlink to a file whose directory was replaced in the meantime', async () => {
      const tar = writeTar([dir('d'), file('d/f', 'x'), file('d', 'now a file'), hardlink('h', 'd/f')]);
      await expectRefused(sb, () => sb.apply(tar), 'LAYER_UNSAFE', /not a regular file extracted earlier/);
    });

    it('a symlink target with NUL (PAX linkpath) is refused', async () => {
      const tar = writeTar([{ name: 's', type: 'symlink', linkname: 'x', pax: { linkpath: Buffer.from('ok\0/etc/passwd') } }]);
      await expectRefused(sb, () => sb.apply(tar), 'LAYER_UNSAFE', /NUL/);
    });

    it('a file over a symlink replaces the symlink instead of writing through it', async () => {
      const tar = writeTar([symlink('s', join(sb.outside, 'secret.txt')), file('s', 'inside\n')]);
      const before = sb.snapshot();
      await sb.apply(tar);
      expect(sb.snapshot()).toEqual(before);
      expect(lstatSync(join(sb.layer, 's')).isFile()).toBe(true);
      expect(readFileSync(join(sb.layer, 's'), 'utf8')).toBe('inside\n');
    });

    it('absolute names are refused', async () => {
      const tar = writeTar([file(join(sb.outside, 'secret.txt'))]);
      await expectRefused(sb, () => sb.apply(tar), 'LAYER_UNSAFE', /absolute/);
    });

    it('"../" names are refused, also hidden in a PAX path', async () => {
      await expectRefused(sb, () => sb.apply(writeTar([file('../outside/secret.txt')])), 'LAYER_UNSAFE', /"\.\."/);
      await expectRefused(sb, () => sb.apply(writeTar([file('a/b/../../../outside/x')])), 'LAYER_UNSAFE');
      const pax = writeTar([file('harmless', 'x', { pax: { path: '../outside/secret.txt' } })]);
      await expectRefused(sb, () => sb.apply(pax), 'LAYER_UNSAFE', /"\.\."/);
    });
  });

  describe('whiteouts', () => {
    it('whiteout of "../x" is refused', async () => {
      await expectRefused(sb, () => sb.apply(writeTar([file('../.wh.secret.txt', '')])), 'LAYER_UNSAFE');
      await expectRefused(sb, () => sb.apply(writeTar([file('a/.wh...', '')])), 'LAYER_UNSAFE', /whiteout/);
    });

    it('whiteout below a symlink parent is refused', async () => {
      const tar = writeTar([symlink('l', sb.outside), file('l/.wh.secret.txt', '')]);
      await expectRefused(sb, () => sb.apply(tar), 'LAYER_UNSAFE', /symlink/);
    });

    it('aufs meta whiteouts (.wh..wh.plnk) are refused', async () => {
      await expectRefused(sb, () => sb.apply(writeTar([dir('.wh..wh.plnk')])), 'LAYER_UNSAFE', /whiteout meta/);
    });

    it('a package layer refuses whiteouts outside its prefix', async () => {
      const tar = writeTar([dir('opt/'), dir('opt/pkg/'), file('opt/.wh.other', '')]);
      await expectRefused(sb, () => sb.apply(tar, { claim: pkg }), 'LAYER_UNSAFE', /prefix/);
      await expectRefused(sb, () => sb.apply(writeTar([file('.wh..wh..opq', '')]), { claim: pkg }), 'LAYER_UNSAFE');
    });
  });

  describe('metadata and special files', () => {
    it('trusted.* xattrs from the archive are refused (overlay.redirect / overlay.opaque forgery)', async () => {
      const tar = writeTar([dir('d'), file('d/f', 'x', { pax: { 'SCHILY.xattr.trusted.overlay.redirect': '/etc' } })]);
      await expectRefused(sb, () => sb.apply(tar), 'LAYER_UNSAFE', /trusted\.overlay\.redirect/);
      const opq = writeTar([{ name: 'd', type: 'dir', pax: { 'SCHILY.xattr.trusted.overlay.opaque': 'y' } }]);
      await expectRefused(sb, () => sb.apply(opq), 'LAYER_UNSAFE');
    });

    it('user.overlay.* xattrs from the archive are refused (rootless overlay forgery)', async () => {
      const tar = writeTar([file('f', 'x', { pax: { 'SCHILY.xattr.user.overlay.whiteout': 'y' } })]);
      await expectRefused(sb, () => sb.apply(tar), 'LAYER_UNSAFE', /user\.overlay\.whiteout/);
    });

    it('a device node in a package layer is refused', async () => {
      const tar = writeTar([dir('opt/'), dir('opt/pkg/'), { name: 'opt/pkg/mem', type: 'char', devmajor: 1, devminor: 1, mode: 0o666 }]);
      await expectRefused(sb, () => sb.apply(tar, { claim: pkg }), 'LAYER_UNSAFE', /device node/);
    });

    it('device nodes are refused when devices are not allowed', async () => {
      for (const type of ['char', 'block', 'fifo'] as const) {
        const tar = writeTar([{ name: 'dev/x', type, devmajor: 8, devminor: 0 }]);
        await expectRefused(sb, () => sb.apply(tar, { allowDevices: false }), 'LAYER_UNSAFE', /"dev\/x"/);
      }
    });

    it('a package layer refuses entries outside its prefix', async () => {
      const tar = writeTar([dir('opt/'), dir('opt/pkg/'), file('opt/pkg/bin/tool', 'ok'), file('etc/passwd', 'pwned')]);
      await expectRefused(sb, () => sb.apply(tar, { claim: { ...pkg, prefix: '/opt/pkg/' } }), 'LAYER_UNSAFE', /"etc\/passwd".*outside the package's prefix/);
      // A prefix look-alike is not inside the prefix.
      await expectRefused(sb, () => sb.apply(writeTar([file('opt/pkg2/x')]), { claim: pkg }), 'LAYER_UNSAFE');
    });
  });

  describe('limits', () => {
    it('names longer than PATH_MAX are refused', async () => {
      const long = Array.from({ length: 40 }, () => 'x'.repeat(120)).join('/');
      await expectRefused(sb, () => sb.apply(writeTar([file(long)])), 'LAYER_UNSAFE', /PATH_MAX/);
    });

    it('name components longer than NAME_MAX are refused', async () => {
      await expectRefused(sb, () => sb.apply(writeTar([file('y'.repeat(256))])), 'LAYER_UNSAFE', /NAME_MAX/);
    });

    it('a tree deeper than maxDepth is refused', async () => {
      const deep = Array.from({ length: 600 }, () => 'd').join('/');
      await expectRefused(sb, () => sb.apply(writeTar([file(deep)])), 'LAYER_UNSAFE', /deeper than 512/);
    });

    it('decompression bomb: a gzip stream inflating past maxTarBytes stops', async () => {
      const tar = Buffer.concat([tarEntry({ name: 'f', type: 'file' }, 'x'), Buffer.alloc(16 * 1024 * 1024)]);
      const gz = gzip(tar);
      expect(gz.length).toBeLessThan(64 * 1024);
      await expectRefused(sb, () => sb.apply(gz, { compression: 'gzip', maxTarBytes: 4 * 1024 * 1024 }), 'LAYER_QUOTA_EXCEEDED', /uncompressed stream/);
    });

    it('byte quota: the sum of file sizes over maxBytes is refused before writing', async () => {
      const tar = writeTar([file('a', 'x'.repeat(600)), file('b', 'y'.repeat(600))]);
      await expectRefused(sb, () => sb.apply(tar, { maxBytes: 1000 }), 'LAYER_QUOTA_EXCEEDED', /"b"/);
      expect(existsSync(join(sb.layer, 'b'))).toBe(false);
    });

    it('entry count over maxEntries is refused', async () => {
      const tar = writeTar(Array.from({ length: 10 }, (_, i) => file(`f${i}`, '')));
      await expectRefused(sb, () => sb.apply(tar, { maxEntries: 5 }), 'LAYER_QUOTA_EXCEEDED', /more than 5 entries/);
    });
  });

  describe('malformed archives', () => {
    it('a bad header checksum is an error, not a skipped entry', async () => {
      const tar = writeTar([file('a', 'x')]);
      tar[0] = 'b'.charCodeAt(0);
      await expectRefused(sb, () => sb.apply(tar), 'LAYER_INVALID', /checksum/);
    });

    it('a stream truncated inside an entry is an error', async () => {
      const tar = tarEntry({ name: 'a', type: 'file' }, 'x'.repeat(2000)).subarray(0, 1200);
      await expectRefused(sb, () => sb.apply(tar), 'LAYER_INVALID', /truncated/);
    });

    it('unsupported entry types are an error', async () => {
      await expectRefused(sb, () => sb.apply(writeTar([{ name: 'vol', type: 'file', typeflag: 'V' }])), 'LAYER_INVALID', /unsupported entry type/);
      await expectRefused(sb, () => sb.apply(writeTar([file('sparse', 'x', { pax: { 'GNU.sparse.major': '1' } })])), 'LAYER_INVALID', /sparse/);
    });

    it('a directory entry carrying data is an error (parser differential)', async () => {
      const tar = writeTar([{ name: 'd', type: 'dir', content: tarEntry({ name: 'hidden', type: 'file' }, 'x') }]);
      await expectRefused(sb, () => sb.apply(tar), 'LAYER_AMBIGUOUS', /carries/);
    });

    it('a malformed PAX record is an error', async () => {
      const good = tarEntry({ name: 'a', type: 'file', pax: { comment: 'hello' } }, 'x');
      const bad = Buffer.from(good);
      const at = bad.indexOf('comment');
      bad.write('9', at - 3); // the record length no longer matches
      // Recompute the PAX header's checksum so only the record is wrong.
      bad.fill(0x20, 148, 156);
      let sum = 0;
      for (let i = 0; i < 512; i++) sum += bad[i]!;
      bad.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'ascii');
      await expectRefused(sb, () => sb.apply(Buffer.concat([bad, Buffer.alloc(1024)])), 'LAYER_INVALID', /PAX/);
    });

    it('corrupt gzip is LAYER_INVALID', async () => {
      const gz = gzip(writeTar([file('a', 'x'.repeat(10000))]));
      gz[gz.length - 20] = gz[gz.length - 20]! ^ 0xff;
      await expectRefused(sb, () => sb.apply(gz, { compression: 'gzip' }), 'LAYER_INVALID', /gzip/);
    });

    it('corrupt zstd is LAYER_INVALID', async () => {
      await expectRefused(sb, () => sb.apply(Buffer.from('this is not zstd at all'), { compression: 'zstd' }), 'LAYER_INVALID', /zstd/);
    });
  });
});
