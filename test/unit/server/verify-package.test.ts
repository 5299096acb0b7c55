import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isHostpullError } from '../../../src/errors.js';
import { LayoutUpstream } from '../../../src/server/layout-upstream.js';
import { verifyPackage } from '../../../src/server/verify-package.js';
import { buildLayer, layerFromTar } from '../../helpers/fixtures.js';
import { writeTar } from '../../helpers/tar-writer.js';
import { pushImageTo } from '../../integration/server/upstreams.js';

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

  it('accepts gzip, zstd and plain tar layers inside the prefix and returns the manifest digest to pin', async () => {
    const files = [{ path: '/opt/p-1/bin/p', content: 'x', mode: 0o755 }];
    for (const compression of ['gzip', 'zstd', 'none'] as const) {
      const digest = await pushImageTo(up, 'pkg/p', compression, [buildLayer(files, { compression })]);
      expect(await verifyPackage(up, 'P1', entry(`pkg/p:${compression}`))).toBe(digest);
    }
  });

  it('refuses a hardlink that points outside the prefix (link-escape)', async () => {
    const tar = writeTar([
      { name: 'opt/p-1/', type: 'dir' },
      { name: 'opt/p-1/shadow', type: 'hardlink', linkname: 'etc/shadow' },
    ]);
    await pushImageTo(up, 'pkg/p', 'hardlink', [layerFromTar(tar)]);
    await expect(verifyPackage(up, 'P1', entry('pkg/p:hardlink'))).rejects.toSatisfy(
      (e: unknown) => isHostpullError(e, 'PACKAGE_REFUSED') && /"opt\/p-1\/shadow": hardlink target "etc\/shadow" is outside the package's prefix \/opt\/p-1/.test(e.message) && e.details?.rule === 'outside-prefix',
    );
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
