import { spawnSync } from 'node:child_process';
import { Parser, type ReadEntry } from 'tar';
import { describe, expect, it } from 'vitest';
import { tarEnd, tarEntry, writeTar, type RawEntry } from '../../helpers/tar-writer.js';

const LONG = `d/${'x'.repeat(150)}/file.txt`;
const CAP = Buffer.from([1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
const ENTRIES: RawEntry[] = [
  { name: '../evil', type: 'file', content: 'pwn' },
  { name: '/etc/abs', type: 'file', content: 'abs' },
  { name: 'link', type: 'symlink', linkname: '../../../etc/passwd' },
  { name: 'hl', type: 'hardlink', linkname: 'etc/abs' },
  { name: 'null', type: 'char', devmajor: 1, devminor: 3, mode: 0o666 },
  { name: 'blk', type: 'block', devmajor: 7, devminor: 1 },
  { name: 'fifo', type: 'fifo' },
  { name: 'dir/', type: 'dir', mode: 0o1777 },
  { name: 'dir/.wh.x', type: 'file' },
  { name: 'dir/.wh..wh..opq', type: 'file' },
  { name: LONG, type: 'file', content: 'long' },
  { name: 'cap', type: 'file', content: '#!/bin/sh\n', mode: 0o4755, pax: { 'SCHILY.xattr.security.capability': CAP, 'SCHILY.xattr.user.note': 'hi' } },
  { name: 'big-uid', type: 'file', uid: 100_000_000, gid: 5, mtime: 0 },
];

function gnuList(tar: Buffer, extra: string[] = []): { lines: string[]; status: number | null; stderr: string } {
  const r = spawnSync('tar', ['-tv', '--numeric-owner', ...extra, '-f', '-'], { input: tar, encoding: 'utf8', env: { ...process.env, LC_ALL: 'C' } });
  return { lines: r.stdout.trim().split('\n'), status: r.status, stderr: r.stderr };
}

describe('tar writer', () => {
  it('writes names, types, modes, owners and devices that GNU tar reads back verbatim', () => {
    const { lines, status, stderr } = gnuList(writeTar(ENTRIES));
    expect(status, stderr).toBe(0);
    const cols = lines.map((l) => {
      const f = l.split(/\s+/);
      return [f[0], f[1], f[2], f.slice(5).join(' ')];
    });
    expect(cols).toEqual([
      ['-rw-r--r--', '0/0', '3', '../evil'],
      ['-rw-r--r--', '0/0', '3', '/etc/abs'],
      ['lrwxrwxrwx', '0/0', '0', 'link -> ../../../etc/passwd'],
      ['hrw-r--r--', '0/0', '0', 'hl link to etc/abs'],
      ['crw-rw-rw-', '0/0', '1,3', 'null'],
      ['brw-r--r--', '0/0', '7,1', 'blk'],
      ['prw-r--r--', '0/0', '0', 'fifo'],
      ['drwxrwxrwt', '0/0', '0', 'dir/'],
      ['-rw-r--r--', '0/0', '0', 'dir/.wh.x'],
      ['-rw-r--r--', '0/0', '0', 'dir/.wh..wh..opq'],
      ['-rw-r--r--', '0/0', '4', LONG],
      ['-rwsr-xr-x', '0/0', '10', 'cap'],
      ['-rw-r--r--', '100000000/5', '0', 'big-uid'],
    ]);
    expect(lines[0]).toContain('2020-01-01 00:00');
    expect(lines[12]).toContain('1970-01-01');
    expect(stderr).toMatch(/Removing leading `\.\.\/'/);
  });

  it('writes SCHILY.xattr pax records that GNU tar reports', () => {
    const { lines, status } = gnuList(writeTar(ENTRIES), ['-v', '--xattrs', '--xattrs-include=*']);
    expect(status).toBe(0);
    const i = lines.findIndex((l) => l.endsWith(' cap'));
    expect(lines.slice(i + 1, i + 3).map((l) => l.trim())).toEqual(['x: 20 security.capability', 'x: 2 user.note']);
  });

  it("is parsed by node-tar without warnings, with the pax path and the body bytes", async () => {
    const seen: { path: string; type: string; body: string }[] = [];
    const warnings: string[] = [];
    await new Promise<void>((resolve, reject) => {
      const p = new Parser({
        strict: true,
        onwarn: (_code, msg) => warnings.push(String(msg)),
        onReadEntry: (e: ReadEntry) => {
          const chunks: Buffer[] = [];
          e.on('data', (c: Buffer) => chunks.push(c));
          e.on('end', () => seen.push({ path: e.path, type: e.type, body: Buffer.concat(chunks).toString() }));
        },
      });
      p.on('end', resolve);
      p.on('error', reject);
      p.end(writeTar(ENTRIES));
    });
    expect(warnings).toEqual([]);
    expect(seen.map((s) => s.type)).toEqual([
      'File', 'File', 'SymbolicLink', 'Link', 'CharacterDevice', 'BlockDevice', 'FIFO', 'Directory', 'File', 'File', 'File', 'File', 'File',
    ]);
    expect(seen.find((s) => s.path === LONG)?.body).toBe('long');
    expect(seen[0]).toEqual({ path: '../evil', type: 'File', body: 'pwn' });
  });

  it('tarEntry + tarEnd compose, and a size override makes a lying header', () => {
    const honest = Buffer.concat([tarEntry({ name: 'a', type: 'file' }, 'abc'), tarEnd()]);
    expect(honest.length).toBe(512 + 512 + 1024);
    expect(gnuList(honest).status).toBe(0);
    // Header says 4096 bytes, archive holds 3: GNU tar must complain.
    const lying = Buffer.concat([tarEntry({ name: 'a', type: 'file', size: 4096 }, 'abc'), tarEnd()]);
    const r = gnuList(lying);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/Unexpected EOF|truncated/i);
  });
});
