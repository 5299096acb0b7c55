import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isHostpullError } from '../../../src/errors.js';
import { LayoutUpstream } from '../../../src/server/layout-upstream.js';
import { entryAllowed, verifyPackage } from '../../../src/server/verify-package.js';
import { buildLayer, layerFromTar } from '../../helpers/fixtures.js';
import { writeTar } from '../../helpers/tar-writer.js';
import { pushImageTo } from '../../integration/server/upstreams.js';

describe('entryAllowed', () => {
  it.each([
    ['opt/jdk-11.0/bin/java', 'File', undefined, true],
    ['./opt/jdk-11.0/', 'Directory', undefined, true],
    ['opt/', 'Directory', undefined, true],
    ['./', 'Directory', undefined, true],
    ['opt', 'File', undefined, false],
    ['opt/jdk-11.0x/evil', 'File', undefined, false],
    ['etc/passwd', 'File', undefined, false],
    ['opt/jdk-11.0/../../etc/passwd', 'File', undefined, false],
    ['/opt/jdk-11.0/lib', 'Directory', undefined, true],
    ['opt/jdk-11.0/link', 'SymbolicLink', '/etc/shadow', true],
    ['opt/jdk-11.0/hard', 'Link', 'etc/shadow', false],
    ['opt/jdk-11.0/hard', 'Link', 'opt/jdk-11.0/bin/java', true],
    ['opt/jdk-11.0/a\0b', 'File', undefined, false],
  ])('%j (%s → %s) is %s', (name, type, linkpath, expected) => {
    expect(entryAllowed(name, type, '/opt/jdk-11.0', linkpath)).toBe(expected);
  });
});

describe('verifyPackage', () => {
  let dir: string;
  let up: LayoutUpstream;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'verify-pkg-'));
    up = new LayoutUpstream({ dir });
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  const entry = (image: string) => ({ image, prefix: '/opt/p-1', env: {}, pathAdd: [] });

  it('accepts gzip, zstd and plain tar layers inside the prefix', async () => {
    const files = [{ path: '/opt/p-1/bin/p', content: 'x', mode: 0o755 }];
    for (const compression of ['gzip', 'zstd', 'none'] as const) {
      await pushImageTo(up, 'pkg/p', compression, [buildLayer(files, { compression })]);
      await verifyPackage(up, 'P1', entry(`pkg/p:${compression}`));
    }
  });

  it('refuses a hardlink that points outside the prefix (link-escape)', async () => {
    const tar = writeTar([
      { name: 'opt/p-1/', type: 'dir' },
      { name: 'opt/p-1/shadow', type: 'hardlink', linkname: 'etc/shadow' },
    ]);
    await pushImageTo(up, 'pkg/p', 'hardlink', [layerFromTar(tar)]);
    await expect(verifyPackage(up, 'P1', entry('pkg/p:hardlink'))).rejects.toThrow(/outside \/opt\/p-1: opt\/p-1\/shadow/);
  });

  it('refuses a layer whose diff_id does not match its content', async () => {
    const good = buildLayer([{ path: '/opt/p-1/x', content: 'x' }]);
    const other = buildLayer([{ path: '/opt/p-1/y', content: 'y' }]);
    await pushImageTo(up, 'pkg/p', 'lying', [{ ...good, diffId: other.diffId }]);
    await expect(verifyPackage(up, 'P1', entry('pkg/p:lying'))).rejects.toThrow(/differs from the config's diff_id/);
  });

  it('refuses a missing image and garbage layers with PACKAGE_REFUSED', async () => {
    await expect(verifyPackage(up, 'P1', entry('pkg/none:1'))).rejects.toSatisfy((e: unknown) => isHostpullError(e, 'PACKAGE_REFUSED'));
    const garbage = layerFromTar(Buffer.from('this is not a tar archive at all'.repeat(40)));
    await pushImageTo(up, 'pkg/p', 'garbage', [garbage]);
    await expect(verifyPackage(up, 'P1', entry('pkg/p:garbage'))).rejects.toSatisfy((e: unknown) => isHostpullError(e, 'PACKAGE_REFUSED'));
  });
});
