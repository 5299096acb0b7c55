import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { TOC_ARTIFACT_TYPE } from '../../../src/oci/index.js';
import { publishPackage } from '../../../src/publish/publish.js';
import { LayoutUpstream } from '../../../src/server/layout-upstream.js';
import { listReferrers } from '../../../src/server/referrers.js';
import type { Upstream } from '../../../src/server/upstream.js';
import { useTempDir } from '../../helpers/tmp.js';

describe('hostpull publish', () => {
  const tempDir = useTempDir('publish-order');

  it("attaches the layer's TOC before it pushes the tag, so no reader of the tag finds the image without it", async () => {
    const work = await tempDir();
    await mkdir(join(work, 'tree', 'bin'), { recursive: true });
    await writeFile(join(work, 'tree', 'bin', 'x'), Buffer.alloc(100_000, 'x'));
    const layout = new LayoutUpstream({ dir: join(work, 'layout') });
    // At the moment the tag is pushed: the TOC referrers of the manifest it names.
    const atTag: number[] = [];
    const watching = new Proxy(layout, {
      get(target, key) {
        if (key === 'putManifest') {
          return async (repo: string, tag: string | undefined, bytes: Buffer, mediaType: string) => {
            if (tag === 'latest') {
              const digest = await target.putManifest(repo, undefined, bytes, mediaType);
              atTag.push((await listReferrers(target, repo, digest, TOC_ARTIFACT_TYPE)).length);
            }
            return target.putManifest(repo, tag, bytes, mediaType);
          };
        }
        // Its methods bound to it: they use private fields.
        const value: unknown = Reflect.get(target, key, target);
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    }) as Upstream;
    const published = await publishPackage({ dir: join(work, 'tree'), code: 'PO1.0', prefix: '/opt/po', upstream: watching, spanSize: 64 * 1024 });
    expect(atTag).toEqual([1]);
    expect((await layout.getManifest('pkg/po1.0', 'latest'))?.digest).toBe(published.manifestDigest);
  });
});
