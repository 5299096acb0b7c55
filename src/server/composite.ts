import { PassThrough, pipeline, type Readable } from 'node:stream';
import type { Logger } from '../log.js';
import { errorRow, HostpullError, isHostpullError } from '../errors.js';
import { MediaType, type Descriptor, type Digest } from '../oci/index.js';
import { findLayerToc } from './package-toc.js';
import { BoundedMap, WindowBudget } from './bounded.js';
import type { Catalog, CatalogEntries, CatalogEntry } from './catalog.js';
import { parseCompositeTag } from './composite-tag.js';
import { synthesizeComposite, type ResolvedBase, type ResolvedPackage } from './synthesize.js';
import { TtlCache } from './ttl-cache.js';
import { readUpstreamImage, splitImageName, type UpstreamImage } from './upstream-image.js';
import type { Upstream } from './upstream.js';
import type { ServerMetrics } from './metrics.js';

export interface CompositeImage {
  /** Canonical tag (sorted code names). */
  tag: string;
  manifest: Buffer;
  digest: Digest;
  mediaType: string;
  configDigest: Digest;
  /**
   * The config's bytes: served from memory under the namespace, since the config exists nowhere
   * else when the push to the upstream was skipped (budget spent) or failed.
   */
  config: Buffer;
}

export interface CompositeResolverOptions {
  upstream: Upstream;
  catalog: Catalog;
  /** Repository under which composites are offered and pushed. */
  namespace: string;
  /** Base image in the upstream (`repo:tag`), whose layers come first; none by default. */
  base?: string | undefined;
  /** How long a composite (and the package images behind it) is reused. Default 30 s. */
  cacheTtlMs?: number;
  /**
   * Composites kept in memory (by tag and by digest), and new composites pushed to the upstream
   * per `cacheTtlMs`: anonymous requests for ever new combinations can neither grow this
   * process's memory nor the upstream without bound. Over the push budget a composite is served
   * from memory only. Default 1000.
   */
  maxComposites?: number | undefined;
  logger: Logger;
  metrics?: ServerMetrics | undefined;
}

/**
 * Turns a composite tag into a manifest: validate and canonicalise the code names, look them up
 * in the catalog, read each package image, synthesise config + manifest, push them to the
 * upstream under the namespace (so they stay addressable by digest), cache the result.
 */
export class CompositeResolver {
  readonly #o: CompositeResolverOptions;
  readonly #composites: TtlCache<CompositeImage>;
  readonly #images: TtlCache<UpstreamImage>;
  /** Package manifest digest → its layer's TOC descriptor, or null when it has none. */
  readonly #tocs: TtlCache<Descriptor | null>;
  /** Digest → composite, for GET by digest (a digest never changes meaning: only the count bounds it). */
  readonly #byDigest: BoundedMap<Digest, CompositeImage>;
  /** Config digest → composite, for config blob GETs under the namespace (bounded like #byDigest). */
  readonly #byConfig: BoundedMap<Digest, CompositeImage>;
  /** Layer digest → package repository that holds it, for blob GETs under the namespace. */
  readonly #blobSources: BoundedMap<Digest, string>;
  /** Manifests and blobs this process already pushed under the namespace. */
  readonly #pushed: BoundedMap<string, true>;
  readonly #pushBudget: WindowBudget;

  constructor(options: CompositeResolverOptions) {
    this.#o = options;
    const ttl = options.cacheTtlMs ?? 30_000;
    const max = options.maxComposites ?? 1000;
    this.#composites = new TtlCache(ttl, max);
    this.#images = new TtlCache(ttl, max);
    this.#tocs = new TtlCache(ttl, max);
    this.#byDigest = new BoundedMap(max);
    this.#byConfig = new BoundedMap(max);
    this.#blobSources = new BoundedMap(max * 8);
    this.#pushed = new BoundedMap(max * 8);
    this.#pushBudget = new WindowBudget(max, ttl);
  }

  /** Resolves a composite tag; throws TAG_INVALID / MANIFEST_UNKNOWN / ENV_CONFLICT naming the code names. */
  async resolve(tag: string): Promise<CompositeImage> {
    const codes = parseCompositeTag(tag);
    const canonical = codes.join('-');
    const [image, hit] = await this.#composites.get(canonical, () => this.#build(codes));
    this.#o.metrics?.compositeCache(hit);
    return image;
  }

  byDigest(digest: Digest): CompositeImage | undefined {
    return this.#byDigest.get(digest);
  }

  /**
   * The config blob of a composite served by this process whose push to the upstream was skipped
   * or failed, by its digest. A pushed config is read from the upstream like every other blob, so
   * that what a client fetched is what the upstream served (the benchmark's accounting holds the
   * two against each other).
   */
  configBlob(digest: Digest): Buffer | undefined {
    const c = this.#byConfig.get(digest);
    return c && !this.#pushed.has(`${c.tag}@${c.digest}`) ? c.config : undefined;
  }

  /** The package repository holding a layer of a composite served by this process. */
  blobSource(digest: Digest): string | undefined {
    return this.#blobSources.get(digest);
  }

  /**
   * The TOC of one layer of an image (`what`: a package's, or the base's), from the image's
   * referrers; undefined without one. A failed lookup is neither cached nor taken for "none": the
   * composite would get another digest than with the TOC (and be pushed under its tag), so the
   * resolution fails, for the client to retry: 503 while the upstream cannot be reached or
   * throttles (its own answer, which clients retry after backing off), else 502.
   */
  async #toc(what: string, repo: string, manifestDigest: Digest, layerDigest: Digest): Promise<Descriptor | undefined> {
    const { upstream, logger } = this.#o;
    try {
      const [toc] = await this.#tocs.get(`${manifestDigest} ${layerDigest}`, async () => (await findLayerToc(upstream, repo, manifestDigest, layerDigest, logger)) ?? null);
      return toc ?? undefined;
    } catch (err) {
      const unavailable = isHostpullError(err) && errorRow(err.code).http === 503;
      throw new HostpullError(unavailable ? err.code : 'UPSTREAM_ERROR', `could not look up the table of contents of ${what} (${repo}@${manifestDigest}) in ${upstream.location}${isHostpullError(err) ? ` (${err.code})` : ''}`, {
        hint: 'retry: a composite is not made without the TOCs its packages have, since it would get another digest',
        cause: err,
        details: { repository: repo, manifestDigest },
      });
    }
  }

  async #image(name: string): Promise<UpstreamImage | null> {
    try {
      const [img] = await this.#images.get(name, async () => {
        const start = performance.now();
        try {
          const got = await readUpstreamImage(this.#o.upstream, name);
          if (!got) throw new HostpullError('MANIFEST_UNKNOWN', `image ${name} is not in ${this.#o.upstream.location}`);
          return got;
        } finally {
          this.#o.metrics?.upstreamLatency('image', (performance.now() - start) / 1000);
        }
      });
      return img;
    } catch (err) {
      if (err instanceof HostpullError && err.code === 'MANIFEST_UNKNOWN') return null;
      throw err;
    }
  }

  #checkCatalog(codes: string[], entries: CatalogEntries): void {
    const unknown = codes.filter((c) => !entries.has(c));
    if (unknown.length > 0) {
      throw new HostpullError('MANIFEST_UNKNOWN', `unknown code name${unknown.length > 1 ? 's' : ''}: ${unknown.join(', ')}`, {
        hint: 'list the known code names with `hostpull catalog ls`',
        details: { unknown },
      });
    }
    const groups = new Map<string, string>();
    for (const code of codes) {
      const group = entries.get(code)!.group;
      if (group === undefined) continue;
      const other = groups.get(group);
      if (other !== undefined) {
        throw new HostpullError('TAG_INVALID', `${other} and ${code} cannot be combined: both belong to group ${group}`, {
          details: { group, codeNames: [other, code] },
        });
      }
      groups.set(group, code);
    }
  }

  async #build(codes: string[]): Promise<CompositeImage> {
    const entries = await this.#o.catalog.entries();
    this.#checkCatalog(codes, entries);
    // The pinned digest, not the tag: what registration checked is what composites are made of.
    const images = await Promise.all(codes.map((c) => this.#image(pinnedImage(entries.get(c)!))));
    const packages: ResolvedPackage[] = codes.map((code, i) => {
      const entry = entries.get(code)!;
      const img = images[i];
      if (!img) {
        throw new HostpullError('MANIFEST_UNKNOWN', `package image ${pinnedImage(entry)} of ${code} is not in ${this.#o.upstream.location}`, {
          hint: 'publish the package again or fix its catalog entry',
          details: { codeName: code, image: entry.image },
        });
      }
      if (img.manifest.layers.length !== 1) {
        throw new HostpullError('PACKAGE_INVALID', `package image ${entry.image} of ${code} has ${img.manifest.layers.length} layers; a package has exactly one`, {
          details: { codeName: code },
        });
      }
      return { code, entry, manifestDigest: img.manifestDigest, layer: img.manifest.layers[0]!, diffId: img.config.rootfs.diff_ids[0]!, config: img.config };
    });
    await Promise.all(packages.map(async (p, i) => (p.toc = await this.#toc(`package ${p.code}`, images[i]!.repo, p.manifestDigest, p.layer.digest))));
    let base: ResolvedBase | undefined;
    if (this.#o.base) {
      const img = await this.#image(this.#o.base);
      if (!img) throw new HostpullError('UPSTREAM_ERROR', `base image ${this.#o.base} is not in ${this.#o.upstream.location}`);
      // A seekable base (the demo's, or any base pushed with a TOC referrer) is lazy on nodes too.
      const tocs = await Promise.all(img.manifest.layers.map((l) => this.#toc(`base image ${this.#o.base}`, img.repo, img.manifestDigest, l.digest)));
      base = { name: this.#o.base, manifestDigest: img.manifestDigest, layers: img.manifest.layers, config: img.config, tocs };
      for (const l of img.manifest.layers) this.#blobSources.set(l.digest, img.repo);
      for (const t of tocs) if (t) this.#blobSources.set(t.digest, img.repo);
    }
    for (const [i, p] of packages.entries()) {
      this.#blobSources.set(p.layer.digest, images[i]!.repo);
      // A node fetches the TOC under the namespace too, by the digest the manifest names.
      if (p.toc) this.#blobSources.set(p.toc.digest, images[i]!.repo);
    }
    const synth = synthesizeComposite(packages, base);
    const tag = codes.join('-');
    // The TOCs too: the manifest names them under the namespace, and a replica (or a restart)
    // that did not build this composite knows no package repository to find them in.
    const tocs = [...(base?.tocs ?? []), ...packages.map((p) => p.toc)].filter((t): t is Descriptor => t !== undefined);
    await this.#push(tag, synth.manifest, synth.manifestDigest, synth.config, synth.configDigest, [...(base?.layers ?? []), ...packages.map((p) => p.layer), ...tocs]);
    const image: CompositeImage = { tag, manifest: synth.manifest, digest: synth.manifestDigest, mediaType: MediaType.OciManifest, configDigest: synth.configDigest, config: synth.config };
    this.#byDigest.set(image.digest, image);
    this.#byConfig.set(image.configDigest, image);
    return image;
  }

  /**
   * Pushes config, layer and TOC mounts and the manifest under the namespace. A failure is logged, not
   * fatal: this process serves the composite from memory either way; only direct readers of the
   * upstream would miss it, and the next resolution retries.
   */
  async #push(tag: string, manifest: Buffer, digest: Digest, config: Buffer, configDigest: Digest, blobs: { digest: Digest; size: number }[]): Promise<void> {
    const { upstream, namespace, logger } = this.#o;
    const key = `${tag}@${digest}`;
    if (this.#pushed.has(key)) return;
    if (!this.#pushBudget.take()) {
      logger.warn({ tag, digest }, 'composite push budget spent for this period; serving the composite from memory only');
      return;
    }
    const start = performance.now();
    try {
      await upstream.putBlob(namespace, configDigest, config.length, config);
      for (const blob of blobs) {
        if (this.#pushed.has(blob.digest)) continue;
        const from = this.#blobSources.get(blob.digest)!;
        // Cross-repository mount: the registry links the existing blob, no bytes move; the
        // body is only read if the registry refuses the mount.
        await upstream.putBlob(namespace, blob.digest, blob.size, () => streamFrom(upstream, from, blob.digest), { mountFrom: from });
        this.#pushed.set(blob.digest, true);
      }
      await upstream.putManifest(namespace, tag, manifest, MediaType.OciManifest);
      this.#pushed.set(key, true);
    } catch (err) {
      logger.warn({ err, tag, digest }, 'could not push composite to upstream; serving it from memory');
    } finally {
      this.#o.metrics?.upstreamLatency('push', (performance.now() - start) / 1000);
    }
  }
}

/** The package image a catalog entry names, by its pinned digest when it has one. */
function pinnedImage(entry: CatalogEntry): string {
  if (!entry.digest) return entry.image;
  return `${splitImageName(entry.image).repo}@${entry.digest}`;
}

/**
 * A Readable that opens the upstream blob lazily (the push API wants a synchronous factory).
 * pipeline, not pipe: when the push gives up on `out` (a refused mount, then a failed PUT) the
 * upstream body is destroyed too, instead of holding its socket or file descriptor open.
 */
function streamFrom(upstream: Upstream, repo: string, digest: Digest): Readable {
  const out = new PassThrough();
  upstream.getBlob(repo, digest).then(
    (blob) => {
      if (!blob) out.destroy(new HostpullError('BLOB_UNKNOWN', `blob ${digest} vanished from ${repo}`));
      // Destroyed before the blob was opened: nobody will read it.
      else if (out.destroyed) blob.stream.destroy();
      // Either end's failure destroys both; the push sees it on `out`.
      else pipeline(blob.stream, out, () => undefined);
    },
    (err: unknown) => out.destroy(err as Error),
  );
  return out;
}
