import { createReadStream } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HostpullError } from '../errors.js';
import { digestOf, hostPlatform, isValidRepository, MediaType, validateTag, type Digest } from '../oci/index.js';
import { parseCatalogEntry, validateCodeName, type CatalogEntry } from '../server/catalog-entry.js';
import type { Upstream } from '../server/upstream.js';
import { buildLayerFile } from './build-layer.js';
import { CatalogClient } from './catalog-client.js';

export interface PublishOptions {
  /** Directory whose contents become the package (placed under `prefix`). */
  dir: string;
  code: string;
  /** Absolute directory the package owns, e.g. /opt/jdk-11.0. */
  prefix: string;
  env?: Record<string, string>;
  pathAdd?: string[];
  /** Default `pkg/<code lowercased>`. */
  repository?: string | undefined;
  /** Default `latest`. */
  tag?: string | undefined;
  description?: string | undefined;
  group?: string | undefined;
  /** Let the package hold setuid/setgid files and file capabilities (`--allow-setuid`). Default false. */
  allowSetuid?: boolean;
  upstream: Upstream;
  /** Register the code name with this server's catalog after pushing; skipped when absent. */
  server?: { url: string; token?: string | undefined } | undefined;
  /** Entry timestamps. Default SOURCE_DATE_EPOCH or 2020-01-01. */
  mtime?: Date;
  signal?: AbortSignal;
}

export interface PublishResult {
  image: string;
  manifestDigest: Digest;
  layerDigest: Digest;
  diffId: Digest;
  size: number;
  entry: CatalogEntry;
  registered: boolean;
}

export function defaultRepository(code: string): string {
  return `pkg/${code.toLowerCase().replace(/_+/g, '_')}`;
}

/**
 * `hostpull publish`: pack DIR as one deterministic layer under its prefix, push it with a config
 * carrying the package's environment, then (optionally) register the code name with the server.
 * The same tree always gives the same manifest digest, so publishing twice is a no-op upstream.
 */
export async function publishPackage(o: PublishOptions): Promise<PublishResult> {
  validateCodeName(o.code);
  const repository = o.repository ?? defaultRepository(o.code);
  if (!isValidRepository(repository)) throw new HostpullError('USAGE', `--repository ${JSON.stringify(repository)} is not a valid repository name`);
  const tag = validateTag(o.tag ?? 'latest');
  const image = `${repository}:${tag}`;
  const entry = parseCatalogEntry(o.code, {
    image,
    prefix: o.prefix.replace(/\/+$/, ''),
    env: o.env ?? {},
    pathAdd: o.pathAdd ?? [],
    ...(o.description !== undefined ? { description: o.description } : {}),
    ...(o.group !== undefined ? { group: o.group } : {}),
    ...(o.allowSetuid ? { allowSetuid: true } : {}),
  });
  if (!(await stat(o.dir).catch(() => null))?.isDirectory()) throw new HostpullError('USAGE', `${o.dir} is not a directory`);

  const work = await mkdtemp(join(tmpdir(), 'hostpull-publish-'));
  try {
    const layer = await buildLayerFile({ dir: o.dir, prefix: entry.prefix, outFile: join(work, 'layer.tar.gz'), ...(o.mtime ? { mtime: o.mtime } : {}), ...(o.signal ? { signal: o.signal } : {}) });
    const created = layer.mtime.toISOString().replace(/\.000Z$/, 'Z');
    const platform = hostPlatform();
    const env = Object.keys(entry.env).sort().map((k) => `${k}=${entry.env[k]}`);
    const config = Buffer.from(
      JSON.stringify({
        created,
        architecture: platform.architecture,
        os: platform.os,
        config: { Env: env, Labels: { 'dev.hostpull.code': o.code, 'dev.hostpull.prefix': entry.prefix } },
        rootfs: { type: 'layers', diff_ids: [layer.diffId] },
        history: [{ created, created_by: `hostpull publish ${o.code} at ${entry.prefix}` }],
      }),
    );
    const configDigest = digestOf(config);
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaType.OciManifest,
        config: { mediaType: MediaType.OciConfig, digest: configDigest, size: config.length },
        layers: [{ mediaType: MediaType.OciLayerGzip, digest: layer.digest, size: layer.size }],
        annotations: { 'dev.hostpull.code': o.code, 'org.opencontainers.image.created': created },
      }),
    );
    await o.upstream.putBlob(repository, layer.digest, layer.size, () => createReadStream(layer.file), o.signal ? { signal: o.signal } : {});
    await o.upstream.putBlob(repository, configDigest, config.length, config, o.signal ? { signal: o.signal } : {});
    const manifestDigest = await o.upstream.putManifest(repository, tag, manifest, MediaType.OciManifest, o.signal);
    let registered = false;
    if (o.server) {
      await new CatalogClient({ server: o.server.url, token: o.server.token }).put(o.code, entry, o.signal);
      registered = true;
    }
    return { image, manifestDigest, layerDigest: layer.digest, diffId: layer.diffId, size: layer.size, entry, registered };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
