import { digestOf, MediaType, type Digest } from '../oci/index.js';
import type { RegistryClient } from '../registry/index.js';
import type { BenchCatalog, BenchPackageVersion } from './catalog.js';
import { baseEntries, buildBlob, chainId, flattenedBlob, packageDir, packageEntries, stackedBlob, type BenchBlob } from './content.js';

/** Repositories the bench writes in its registry. */
export const BENCH_REPOS = {
  base: 'bench/base',
  flattened: 'bench/flat',
  stacked: 'bench/stacked',
  package: (name: string) => `bench/pkg/${name.toLowerCase()}`,
} as const;
export const BASE_TAG = '1.0';

export interface PushedImage {
  repository: string;
  tag: string;
  manifestDigest: Digest;
  layers: BenchBlob[];
}

/** A deterministic image config: the same layers and env always give the same digest. */
function imageConfig(layers: readonly BenchBlob[], env: readonly string[]): Buffer {
  return Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      config: { Env: env },
      rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
    }),
  );
}

/** Pushes layers (skipped by the registry when present), config and an OCI manifest under a tag. */
export async function pushImage(client: RegistryClient, registry: string, repository: string, tag: string, layers: readonly BenchBlob[], env: readonly string[], signal?: AbortSignal): Promise<PushedImage> {
  const repo = { registry, repository };
  const opts = signal ? { signal } : {};
  for (const l of layers) await client.pushBlob(repo, l.digest, l.size, l.blob, opts);
  const config = imageConfig(layers, env);
  await client.pushBlob(repo, digestOf(config), config.length, config, opts);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.OciManifest,
      config: { mediaType: MediaType.OciConfig, digest: digestOf(config), size: config.length },
      layers: layers.map((l) => ({ mediaType: MediaType.OciLayerGzip, digest: l.digest, size: l.size })),
    }),
  );
  const manifestDigest = await client.putManifest({ registry, repository, tag }, manifest, MediaType.OciManifest, opts);
  return { repository, tag, manifestDigest, layers: [...layers] };
}

function pathEnv(codes: readonly string[]): string[] {
  return [`PATH=${[...codes.map((c) => `/${packageDir(c)}/bin`), '/usr/bin', '/bin'].join(':')}`];
}

/**
 * Builds the bench's blobs on demand and caches them: package entries once per version, each
 * baseline layer once per distinct content, so a combination seen twice costs nothing more.
 */
export class BenchImageBuilder {
  readonly #seed: number;
  readonly #versions: Map<string, BenchPackageVersion>;
  readonly #baseEntries: Buffer[];
  readonly #entries = new Map<string, Buffer[]>();
  readonly #blobs = new Map<string, BenchBlob>();
  readonly base: BenchBlob;

  constructor(catalog: BenchCatalog, versions: Map<string, BenchPackageVersion>) {
    this.#seed = catalog.seed;
    this.#versions = versions;
    this.#baseEntries = baseEntries(catalog.seed, catalog.baseBytes);
    this.base = buildBlob(this.#baseEntries);
  }

  #packageEntries(code: string): Buffer[] {
    let e = this.#entries.get(code);
    if (!e) {
      const v = this.#versions.get(code);
      if (!v) throw new RangeError(`unknown code name ${code}`);
      e = packageEntries(this.#seed, v);
      this.#entries.set(code, e);
    }
    return e;
  }

  #cached(key: string, build: () => BenchBlob): BenchBlob {
    let b = this.#blobs.get(key);
    if (!b) {
      b = build();
      this.#blobs.set(key, b);
    }
    return b;
  }

  /** The package's own single layer, as hostpull's catalog references it. */
  packageLayer(code: string): BenchBlob {
    return this.#cached(`pkg:${code}`, () => buildBlob(this.#packageEntries(code)));
  }

  /** Baseline (a): base and packages in one layer. `codes` in canonical order. */
  flattenedLayers(codes: readonly string[]): BenchBlob[] {
    return [this.#cached(`flat:${codes.join('-')}`, () => flattenedBlob(this.#baseEntries, codes.map((c) => this.#packageEntries(c))))];
  }

  /** Baseline (b): base, then one layer per package whose `.parent` names the chain below it. */
  stackedLayers(codes: readonly string[]): BenchBlob[] {
    const layers = [this.base];
    let chain = chainId(undefined, this.base.diffId);
    for (const code of codes) {
      const parent = chain;
      const layer = this.#cached(`stack:${parent}:${code}`, () => stackedBlob(parent, this.#packageEntries(code)));
      layers.push(layer);
      chain = chainId(chain, layer.diffId);
    }
    return layers;
  }

  pathEnv(codes: readonly string[]): string[] {
    return pathEnv(codes);
  }
}
