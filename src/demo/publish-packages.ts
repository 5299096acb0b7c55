import { isDeepStrictEqual } from 'node:util';
import { join } from 'node:path';
import { HostpullError } from '../errors.js';
import type { Digest } from '../oci/index.js';
import { CatalogClient, defaultRepository } from '../publish/index.js';
import { parseCatalogEntry, type CatalogEntry, readUpstreamImage, type Upstream } from '../server/index.js';
import type { BuiltPackage } from './build-package.js';
import { readMarker, writeMarker } from './build-marker.js';

export interface PublishedPackage {
  code: string;
  image: string;
  manifestDigest: Digest;
  layerDigest: Digest;
  layerSize: number;
  /** Reused from an earlier run (same build, same digest still in the layout). */
  cached: boolean;
}

interface PublishMarker {
  key: string;
  manifestDigest: Digest;
  /** The layer format the marker was written for: a package published before seekable layers (no TOC) is published again. */
  layerFormat?: string;
}

/** Bumped when `hostpull publish` writes layers differently, so the demo publishes again once. */
const LAYER_FORMAT = 'seekable-v1';

export function catalogEntryFor(pkg: BuiltPackage): CatalogEntry {
  const s = pkg.spec;
  return parseCatalogEntry(s.code, {
    image: `${defaultRepository(s.code)}:latest`,
    prefix: s.prefix,
    env: s.env,
    pathAdd: s.pathAdd,
    description: s.description,
    ...(s.group !== undefined ? { group: s.group } : {}),
  });
}

/** The flags of `hostpull publish` / `catalog add` that describe the package. */
function entryFlags(pkg: BuiltPackage): string[] {
  const s = pkg.spec;
  return [
    '--prefix',
    s.prefix,
    ...Object.entries(s.env).flatMap(([k, v]) => ['--env', `${k}=${v}`]),
    ...s.pathAdd.flatMap((p) => ['--path-add', p]),
    '--description',
    s.description,
    ...(s.group !== undefined ? ['--group', s.group] : []),
  ];
}

export function publishArgs(pkg: BuiltPackage, layout: string, tokenFile: string): string[] {
  return ['publish', pkg.dir, '--code', pkg.spec.code, ...entryFlags(pkg), '--layout', layout, '--token-file', tokenFile];
}

export function catalogAddArgs(pkg: BuiltPackage, tokenFile: string): string[] {
  return ['catalog', 'add', pkg.spec.code, catalogEntryFor(pkg).image, ...entryFlags(pkg), '--token-file', tokenFile];
}

function markerFile(work: string, pkg: BuiltPackage): string {
  return join(work, 'pkgs', `${pkg.spec.name}.published.json`);
}

/** What the layout holds for the package now (after a publish, or from an earlier run). */
export async function describePublished(upstream: Upstream, pkg: BuiltPackage, cached: boolean): Promise<PublishedPackage> {
  const image = catalogEntryFor(pkg).image;
  const img = await readUpstreamImage(upstream, image);
  if (!img || img.manifest.layers.length !== 1) {
    throw new HostpullError('DEMO_STEP_FAILED', `${pkg.spec.code}: ${image} is not a one-layer image in ${upstream.location} after publishing`);
  }
  const layer = img.manifest.layers[0]!;
  return { code: pkg.spec.code, image, manifestDigest: img.manifestDigest, layerDigest: layer.digest, layerSize: layer.size, cached };
}

/**
 * Whether publishing can be skipped: the package was built from the same .deb files as when it
 * was last published, and the layout still tags that very manifest. Publishing is deterministic,
 * so doing it again would only spend half a minute of gzip to arrive at the same digest.
 */
export async function alreadyPublished(work: string, upstream: Upstream, pkg: BuiltPackage): Promise<PublishedPackage | null> {
  const marker = await readMarker<PublishMarker>(markerFile(work, pkg));
  if (marker?.key !== pkg.key || marker.layerFormat !== LAYER_FORMAT) return null;
  const now = await describePublished(upstream, pkg, true).catch(() => null);
  return now?.manifestDigest === marker.manifestDigest ? now : null;
}

export async function rememberPublished(work: string, pkg: BuiltPackage, published: PublishedPackage): Promise<void> {
  await writeMarker(markerFile(work, pkg), { key: pkg.key, manifestDigest: published.manifestDigest, layerFormat: LAYER_FORMAT } satisfies PublishMarker);
}

/** Whether the server's catalog already maps the code name to exactly this entry, pinned to `manifestDigest`. */
export async function registeredAsExpected(server: string, pkg: BuiltPackage, manifestDigest: string, signal?: AbortSignal): Promise<boolean> {
  const entries = await new CatalogClient({ server }).list(signal);
  return isDeepStrictEqual(entries.get(pkg.spec.code), { ...catalogEntryFor(pkg), digest: manifestDigest });
}
