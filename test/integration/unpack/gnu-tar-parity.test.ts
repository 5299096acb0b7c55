import { execFileSync, spawnSync } from 'node:child_process';
import { createReadStream, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyLayer } from '../../../src/unpack/index.js';
import { generateTree } from './generate-tree.js';

// Our applier against GNU tar on the same generated ~2,000-entry layer: the trees must be
// indistinguishable by path, mode (incl. setuid/setgid), owner, size, symlink target, mtime and
// content hash.

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'hp-unpack-parity-'));
  generateTree(join(dir, 'src'), { files: 2000, meanSize: 1500 });
  // Uncompressed: decompression is covered by the unit tests; this one compares the trees.
  execFileSync('tar', ['--numeric-owner', '-C', join(dir, 'src'), '-cf', join(dir, 'layer.tar'), '.']);
});
afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function listing(root: string): string {
  // %T@ of directories is included: both set directory times after their children.
  return execFileSync('sh', ['-c', `cd "${root}" && find . -mindepth 1 -printf '%p %m %U %G %s %l %T@ %n\\n' | LC_ALL=C sort`], {
    maxBuffer: 1 << 26,
  }).toString();
}

function hashes(root: string): string {
  return execFileSync('sh', ['-c', `cd "${root}" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum`], { maxBuffer: 1 << 26 }).toString();
}

describe('parity with GNU tar', () => {
  it('extracts a generated 2,000-file layer exactly like tar -xpf --same-owner', async () => {
    const gnu = join(dir, 'gnu');
    const ours = join(dir, 'ours');
    mkdirSync(gnu);
    mkdirSync(ours);
    const t = spawnSync('tar', ['--same-owner', '--numeric-owner', '-xpf', join(dir, 'layer.tar'), '-C', gnu]);
    expect(t.status, t.stderr.toString()).toBe(0);
    const r = await applyLayer(createReadStream(join(dir, 'layer.tar')), { compression: 'none', target: ours });
    expect(r.files).toBeGreaterThan(1800);

    const expected = listing(gnu);
    expect(expected.split('\n').length).toBeGreaterThan(2000);
    expect(expected).toMatch(/ 4755 /);
    expect(listing(ours)).toBe(expected);
    expect(hashes(ours)).toBe(hashes(gnu));
  });
});
