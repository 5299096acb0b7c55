import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { treeChecksum } from '../../../src/archive/tree-checksum.js';
import { writeTar } from '../../helpers/tar-writer.js';
import { makeSandbox, type Sandbox } from '../unpack/sandbox.js';

let sb: Sandbox;
beforeEach(() => {
  sb = makeSandbox();
});
afterEach(() => sb.cleanup());

const layer = () =>
  writeTar([
    { name: 'bin/', type: 'dir' },
    { name: 'bin/tool', type: 'file', mode: 0o755, content: 'tool\n' },
    { name: 'bin/same', type: 'hardlink', linkname: 'bin/tool' },
    { name: 'bin/link', type: 'symlink', linkname: '/etc/target' },
    { name: 'etc/', type: 'dir', mode: 0o750 },
    { name: 'etc/empty', type: 'file', content: '' },
    { name: 'etc/.wh.gone', type: 'file' },
    { name: 'dev/null', type: 'char', devmajor: 1, devminor: 3, mode: 0o666 },
  ]);

describe('treeChecksum', () => {
  it('what the unpacker records (from the CRCs it computed while writing) is what a walk of the tree finds', async () => {
    for (const rootless of [false, true]) {
      const r = await sb.apply(layer(), { rootless });
      expect(r.treeChecksum).toMatch(/^tree1:[0-9a-f]{64}$/);
      expect(treeChecksum(sb.layer)).toBe(r.treeChecksum);
    }
  });

  it('changes with a file\'s content, a mode, a new file', async () => {
    const r = await sb.apply(layer());
    writeFileSync(join(sb.layer, 'bin', 'tool'), 'tOol\n');
    expect(treeChecksum(sb.layer)).not.toBe(r.treeChecksum);
    writeFileSync(join(sb.layer, 'bin', 'tool'), 'tool\n');
    expect(treeChecksum(sb.layer)).toBe(r.treeChecksum);
    chmodSync(join(sb.layer, 'etc'), 0o755);
    expect(treeChecksum(sb.layer)).not.toBe(r.treeChecksum);
    chmodSync(join(sb.layer, 'etc'), 0o750);
    writeFileSync(join(sb.layer, 'etc', 'new'), '');
    expect(treeChecksum(sb.layer)).not.toBe(r.treeChecksum);
  });
});
