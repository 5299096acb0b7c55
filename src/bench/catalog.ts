import { HostpullError } from '../errors.js';
import { hashSeed, mulberry32, randomNormal } from './prng.js';

/** One version of a synthetic package: a single layer owning `/opt/<dir>/`. */
export interface BenchPackageVersion {
  /** Code name, e.g. `JDK1.2`: the package name followed by the version. */
  code: string;
  package: string;
  version: string;
  /** Position among the package's versions, 0 = oldest. */
  index: number;
  /** Uncompressed payload bytes of the layer's files (already scaled). */
  bytes: number;
  /** Files the payload is split into; default about one per 256 KiB, 1…6. */
  files?: number;
}

export interface BenchPackage {
  name: string;
  versions: BenchPackageVersion[];
}

export interface BenchCatalog {
  seed: number;
  packages: BenchPackage[];
  /** Payload bytes of the shared base layer. */
  baseBytes: number;
}

export interface SyntheticCatalogOptions {
  /** Number of packages. Default 6. */
  packages?: number;
  /** Versions per package. Default 3. */
  versions?: number;
  seed?: number;
  /**
   * Multiplies every size. The spread is modelled at real scale (1 MB…200 MB per package, base
   * 30 MB); 0.005 (default) keeps a small run to a few MB so it finishes in seconds.
   */
  scale?: number;
  /** Lower bound of a layer's payload after scaling, so tiny scales still produce real files. Default 4 KiB. */
  minBytes?: number;
}

/** Names that look like the packages composites are made of; past the list, PKG<n>. */
const NAMES = ['JDK', 'MVN', 'GRD', 'NODE', 'PY', 'GO', 'RUST', 'RUBY', 'PHP', 'DOTNET', 'SBT', 'ANT', 'CMAKE', 'GCC', 'YARN', 'PNPM', 'KUBECTL', 'HELM', 'TERRAFORM', 'AWSCLI'];

export const MIN_PACKAGE_BYTES = 1_000_000;
export const MAX_PACKAGE_BYTES = 200_000_000;
/** Median package size at scale 1: most tools are tens of MB, runtimes and SDKs reach hundreds. */
const MEDIAN_PACKAGE_BYTES = 20_000_000;
const SIGMA = 1.2;
const BASE_BYTES = 30_000_000;

function packageName(i: number): string {
  return i < NAMES.length ? NAMES[i]! : `PKG${i}`;
}

/**
 * Log-normal package size clamped to [1 MB, 200 MB]: a realistic spread where a handful of big
 * runtimes dominate the bytes, which is what makes byte and layer hit rates differ.
 */
export function packageSize(seed: number, name: string): number {
  const z = randomNormal(mulberry32(hashSeed(seed, `size:${name}`)));
  const bytes = Math.exp(Math.log(MEDIAN_PACKAGE_BYTES) + SIGMA * z);
  return Math.round(Math.min(MAX_PACKAGE_BYTES, Math.max(MIN_PACKAGE_BYTES, bytes)));
}

/** N packages × V versions; a version differs from the previous one by ±10 % in size. */
export function syntheticCatalog(options: SyntheticCatalogOptions = {}): BenchCatalog {
  const n = options.packages ?? 6;
  const v = options.versions ?? 3;
  const seed = options.seed ?? 1;
  const scale = options.scale ?? 0.005;
  const minBytes = options.minBytes ?? 4096;
  if (!Number.isInteger(n) || n < 1 || n > 1000) throw new HostpullError('USAGE', `--packages must be an integer in 1…1000, got ${n}`);
  if (!Number.isInteger(v) || v < 1 || v > 100) throw new HostpullError('USAGE', `--versions must be an integer in 1…100, got ${v}`);
  if (!(scale > 0 && scale <= 1)) throw new HostpullError('USAGE', `--scale must be in (0, 1], got ${scale}`);
  const packages: BenchPackage[] = [];
  for (let i = 0; i < n; i++) {
    const name = packageName(i);
    const rnd = mulberry32(hashSeed(seed, `versions:${name}`));
    let size = packageSize(seed, name);
    const versions: BenchPackageVersion[] = [];
    for (let j = 0; j < v; j++) {
      if (j > 0) size = Math.round(size * (0.9 + 0.2 * rnd()));
      const version = `${j + 1}.0`;
      versions.push({ code: `${name}${version}`, package: name, version, index: j, bytes: Math.max(minBytes, Math.round(size * scale)) });
    }
    packages.push({ name, versions });
  }
  return { seed, packages, baseBytes: Math.max(minBytes, Math.round(BASE_BYTES * scale)) };
}

/** Every version of every package, keyed by code name. */
export function catalogIndex(catalog: BenchCatalog): Map<string, BenchPackageVersion> {
  const out = new Map<string, BenchPackageVersion>();
  for (const p of catalog.packages) for (const v of p.versions) out.set(v.code, v);
  return out;
}
