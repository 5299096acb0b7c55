import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HostpullError } from '../errors.js';
import { isValidRepository, validateTag } from '../oci/index.js';
import { parseCatalogEntry, validateCodeName, withoutUpstreamHost, type CatalogEntry, type Upstream } from '../server/index.js';
import { attachToc } from './attach-toc.js';
import { buildLayerFile } from './build-layer.js';
import { CatalogClient } from './catalog-client.js';
import { pushSingleLayerImage, type PushedLayerImage } from './push-image.js';

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
  /** Uncompressed bytes per independently inflatable span of the layer. Default 1 MiB (see span-gzip.ts). */
  spanSize?: number;
  signal?: AbortSignal;
}

export interface PublishResult extends PushedLayerImage {
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
  // `--repository 127.0.0.1:5000/pkg/x` for an upstream at that address means pkg/x there.
  const repository = o.repository === undefined ? defaultRepository(o.code) : withoutUpstreamHost(o.repository, o.upstream, '--repository', 'USAGE');
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
  if (o.spanSize !== undefined && (!Number.isInteger(o.spanSize) || o.spanSize < 64 * 1024 || o.spanSize > 256 * 1024 * 1024)) {
    throw new HostpullError('USAGE', `span size ${o.spanSize} is outside 64 KiB … 256 MiB`, { hint: 'the default, 1M, suits most packages' });
  }
  if (!(await stat(o.dir).catch(() => null))?.isDirectory()) throw new HostpullError('USAGE', `${o.dir} is not a directory`);

  const work = await mkdtemp(join(tmpdir(), 'hostpull-publish-'));
  try {
    const layer = await buildLayerFile({
      dir: o.dir,
      prefix: entry.prefix,
      outFile: join(work, 'layer.tar.gz'),
      ...(o.mtime ? { mtime: o.mtime } : {}),
      ...(o.spanSize ? { spanSize: o.spanSize } : {}),
      ...(o.signal ? { signal: o.signal } : {}),
    });
    const created = layer.mtime.toISOString().replace(/\.000Z$/, 'Z');
    const env = Object.keys(entry.env).sort().map((k) => `${k}=${entry.env[k]}`);
    const manifest = await pushSingleLayerImage(
      o.upstream,
      repository,
      tag,
      {
        layer,
        created,
        runConfig: { Env: env, Labels: { 'dev.hostpull.code': o.code, 'dev.hostpull.prefix': entry.prefix } },
        createdBy: `hostpull publish ${o.code} at ${entry.prefix}`,
        annotations: { 'dev.hostpull.code': o.code, 'org.opencontainers.image.created': created },
      },
      { signal: o.signal, beforeTag: (subject) => attachToc(o.upstream, repository, layer, subject, created, o.signal) },
    );
    const manifestDigest = manifest.digest;
    let registered = false;
    if (o.server) {
      await new CatalogClient({ server: o.server.url, token: o.server.token }).put(o.code, entry, o.signal);
      registered = true;
    }
    return { image, manifestDigest, layerDigest: layer.digest, diffId: layer.diffId, size: layer.size, tocDigest: layer.tocDigest, entry, registered };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
