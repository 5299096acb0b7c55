/**
 * vitest helper for fault and kill tests: a real registry holding the fixture set and one image
 * `hostpull:<code>` of the base and a big package layer (~8 MB of gzip, big enough that a fault
 * or a kill lands in the middle of it), behind a fault proxy. Everything is stopped after the file.
 */
import { afterAll, beforeAll } from 'vitest';
import { buildLayer, packageFiles, pushFixtureSet, pushImage, type BuiltLayer, type FixtureSet, type FixtureSetOptions } from './fixtures.js';
import { startProxy, type TestProxy } from './proxy.js';
import { startRegistry, type TestRegistry } from './registry.js';

export interface BigImage {
  registry: TestRegistry;
  fixtures: FixtureSet;
  /** The big layer of `hostpull:<code>`. */
  big: BuiltLayer;
  proxy: TestProxy;
  /** Whether a proxied request is a GET of the big layer. */
  isBig(req: { method: string; path: string }): boolean;
}

export function useBigImageBehindProxy(code: string, opts: { seed: number; fixtures?: FixtureSetOptions }): () => BigImage {
  let state: BigImage | undefined;
  let registry: TestRegistry | undefined;
  let proxy: TestProxy | undefined;
  beforeAll(async () => {
    registry = await startRegistry();
    const fixtures = await pushFixtureSet(registry.url, opts.fixtures ?? { codes: [], composites: [] });
    const big = buildLayer(packageFiles(code, { bytes: 16 * 1024 * 1024, seed: opts.seed }));
    await pushImage(registry.url, 'hostpull', code, [fixtures.base, big], { cmd: ['/bin/sh'] });
    proxy = await startProxy(registry.url);
    state = { registry, fixtures, big, proxy, isBig: (r) => r.method === 'GET' && r.path.endsWith(`/blobs/${big.digest}`) };
  });
  afterAll(async () => {
    await proxy?.close();
    await registry?.stop();
  });
  return () => {
    if (!state) throw new Error('useBigImageBehindProxy: used before beforeAll ran');
    return state;
  };
}
