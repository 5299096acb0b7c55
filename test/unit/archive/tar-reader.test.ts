import { describe, expect, it } from 'vitest';
import { HostpullError } from '../../../src/errors.js';
import { normaliseEntryPath } from '../../../src/archive/entry-path.js';
import { parsePaxRecords } from '../../../src/archive/pax.js';
import { parseNumeric, TarReader, type TarEntryHeader } from '../../../src/archive/tar-reader.js';
import { tarEnd, tarEntry, writeTar } from '../../helpers/tar-writer.js';

interface Read {
  header: TarEntryHeader;
  data: Buffer;
}

function read(tar: Buffer, chunk = tar.length): Read[] {
  const out: Read[] = [];
  let parts: Buffer[] = [];
  const reader = new TarReader(
    {
      entry: (header) => {
        parts = [];
        out.push({ header, data: Buffer.alloc(0) });
      },
      data: (c) => parts.push(Buffer.from(c)),
      entryEnd: () => {
        out[out.length - 1]!.data = Buffer.concat(parts);
      },
    },
    { where: '/layer' },
  );
  for (let i = 0; i < tar.length; i += chunk) reader.write(tar.subarray(i, i + chunk));
  reader.end();
  return out;
}

function withChecksum(block: Buffer): Buffer {
  block.fill(0x20, 148, 156);
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += block[i]!;
  block.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'ascii');
  return block;
}

describe('TarReader', () => {
  it('reads PAX xattrs byte-exact, PAX path/linkpath/uid/mtime overrides', () => {
    const bin = Buffer.from([0, 1, 0xff, 0x0a, 0x3d, 0x20, 0x80]);
    const tar = writeTar([
      { name: 'short', type: 'file', content: 'abc', pax: { path: 'the/real name', 'SCHILY.xattr.user.bin': bin, uid: '3000000', mtime: '1700000000.25' } },
      { name: 'l', type: 'symlink', linkname: 'x', pax: { linkpath: '/very/long/target' } },
    ]);
    for (const chunk of [tar.length, 1, 511, 513]) {
      const [a, b] = read(tar, chunk);
      expect(a!.header).toMatchObject({ name: 'the/real name', uid: 3_000_000, mtime: 1_700_000_000.25, size: 3 });
      expect(a!.header.xattrs.get('user.bin')).toEqual(bin);
      expect(a!.data.toString()).toBe('abc');
      expect(b!.header).toMatchObject({ type: 'symlink', linkname: '/very/long/target' });
    }
  });

  it('applies global PAX headers to every following entry; local records win', () => {
    const g = tarEntry({ name: 'g', type: 'file', typeflag: 'g' }, Buffer.from('30 SCHILY.xattr.user.g=global\n'));
    const tar = Buffer.concat([
      g,
      tarEntry({ name: 'a', type: 'file' }),
      tarEntry({ name: 'b', type: 'file', pax: { 'SCHILY.xattr.user.g': 'local' } }),
      tarEnd(),
    ]);
    const [a, b] = read(tar);
    expect(a!.header.xattrs.get('user.g')?.toString()).toBe('global');
    expect(b!.header.xattrs.get('user.g')?.toString()).toBe('local');
  });

  it('parses base-256 numbers (GNU) and rejects garbage in octal fields', () => {
    const big = Buffer.alloc(12);
    big[0] = 0x80;
    big.writeUIntBE(2 ** 40, 6, 6);
    expect(parseNumeric(big, 0, 12)).toBe(2 ** 40);
    expect(parseNumeric(Buffer.from(' 0755 \0'), 0, 7)).toBe(0o755);
    expect(parseNumeric(Buffer.from('07x5\0'), 0, 5)).toBeUndefined();
    expect(parseNumeric(Buffer.from([0xff, 0xff]), 0, 2)).toBeUndefined();
  });

  it('treats an old-style regular file with a trailing slash as a directory', () => {
    const block = tarEntry({ name: 'olddir/', type: 'file', typeflag: '\0' });
    expect(read(Buffer.concat([block, tarEnd()]))[0]!.header.type).toBe('dir');
  });

  it('ignores bytes after the end marker but refuses data after a lone zero block', () => {
    const tar = Buffer.concat([writeTar([{ name: 'a', type: 'file', content: 'x' }]), Buffer.from('trailing junk')]);
    expect(read(tar)).toHaveLength(1);
    const lone = Buffer.concat([tarEntry({ name: 'a', type: 'file' }), Buffer.alloc(512), tarEntry({ name: 'b', type: 'file' })]);
    expect(() => read(lone)).toThrow(/lone zero block/);
  });

  it('accepts a stream that ends cleanly at a header boundary without an end marker', () => {
    expect(read(tarEntry({ name: 'a', type: 'file' }, 'x'))).toHaveLength(1);
  });

  it('refuses a PAX header with no entry after it, and invalid UTF-8 names', () => {
    const pax = tarEntry({ name: 'a', type: 'file', pax: { comment: 'c' } });
    expect(() => read(Buffer.concat([pax.subarray(0, 1024), tarEnd()]))).toThrow(/not followed by an entry/);
    const bad = tarEntry({ name: 'xx', type: 'file' });
    bad[0] = 0xc3;
    bad[1] = 0x28;
    expect(() => read(Buffer.concat([withChecksum(bad), tarEnd()]))).toThrow(/UTF-8/);
  });

  it('errors are HostpullError LAYER_INVALID naming the layer and the offset', () => {
    const tar = writeTar([{ name: 'a', type: 'file', content: 'x' }, { name: 'b', type: 'file', typeflag: 'S' }]);
    try {
      read(tar);
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(HostpullError);
      expect(err).toMatchObject({ code: 'LAYER_INVALID', message: expect.stringMatching(/\/layer: entry "b".*offset 1024/) });
    }
  });
});

describe('parsePaxRecords', () => {
  it('keeps values with "=", newlines only in binary xattr values; refuses inconsistent lengths', () => {
    const r = parsePaxRecords(Buffer.from('28 SCHILY.xattr.user.k=v=\nw\n'));
    expect(r.get('SCHILY.xattr.user.k')?.toString()).toBe('v=\nw');
    expect(parsePaxRecords(Buffer.from('8 k=v=w\n')).get('k')?.toString()).toBe('v=w');
    expect(() => parsePaxRecords(Buffer.from('10 k=v=\nw\n'))).toThrow(/newline/);
    expect(() => parsePaxRecords(Buffer.from('99 k=v\n'))).toThrow(/length/);
    expect(() => parsePaxRecords(Buffer.from('x k=v\n'))).toThrow();
  });
});

describe('normaliseEntryPath', () => {
  it('strips ./ and duplicate slashes, refuses .., absolute, NUL', () => {
    expect(normaliseEntryPath('./a//b/./c/', 512)).toBe('a/b/c');
    expect(normaliseEntryPath('./', 512)).toBe('');
    expect(normaliseEntryPath('.', 512)).toBe('');
    expect(normaliseEntryPath('a/../b', 512)).toEqual({ refused: expect.stringContaining('..'), rule: 'dot-dot' });
    expect(normaliseEntryPath('/etc', 512)).toEqual({ refused: 'absolute name', rule: 'absolute-name' });
    expect(normaliseEntryPath('a\0b', 512)).toEqual({ refused: 'name contains NUL', rule: 'nul-in-name' });
    expect(normaliseEntryPath('a/b/c', 2)).toEqual({ refused: expect.stringContaining('deeper'), rule: 'too-deep' });
    expect(normaliseEntryPath('..foo/.wh..x', 512)).toBe('..foo/.wh..x');
  });

  it('gives clean names (the fast path) the same answer as names that need rebuilding', () => {
    const cases: Array<[string, string]> = [
      ['opt/go/bin/go', './opt//go/bin/./go'],
      ['opt/go/', 'opt/go//'],
      ['a/..b/c.', 'a/./..b/c./'],
    ];
    for (const [clean, messy] of cases) expect(normaliseEntryPath(clean, 512)).toEqual(normaliseEntryPath(messy, 512));
    expect(normaliseEntryPath('a/b/c/', 3)).toBe('a/b/c');
    expect(normaliseEntryPath('a/b/c/d', 3)).toEqual({ refused: expect.stringContaining('deeper'), rule: 'too-deep' });
    // 256 bytes in one component: refused however the name is spelt.
    expect(normaliseEntryPath('é'.repeat(128), 512)).toEqual({ refused: expect.stringContaining('NAME_MAX'), rule: 'name-too-long' });
    expect(normaliseEntryPath(`${'é'.repeat(100)}/${'é'.repeat(100)}`, 512)).toBe(`${'é'.repeat(100)}/${'é'.repeat(100)}`);
  });
});
