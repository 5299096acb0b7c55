import { readFile, stat } from 'node:fs/promises';
import { HostpullError } from '../errors.js';
import { digestOf, MediaType, parseManifest } from '../oci/index.js';
import { isCodeName, parseCatalogDocument, parseCatalogEntry, validateCodeName, type CatalogEntries, type CatalogEntry } from './catalog-entry.js';
import type { Upstream } from './upstream.js';

export type { CatalogEntry, CatalogEntries } from './catalog-entry.js';

/** Code name → package image, read through a cache; writable unless it comes from a static file. */
export interface Catalog {
  readonly writable: boolean;
  /** Where it lives, for messages. */
  readonly location: string;
  /** All entries; served from a cache younger than the TTL, so a change made elsewhere shows within it. */
  entries(signal?: AbortSignal): Promise<CatalogEntries>;
  put(code: string, entry: CatalogEntry, signal?: AbortSignal): Promise<void>;
  /** False when the code name was not registered. */
  remove(code: string, signal?: AbortSignal): Promise<boolean>;
}

function readOnly(location: string): HostpullError {
  return new HostpullError('UNSUPPORTED', `the catalog is the static file ${location} and cannot be changed through the API`, {
    hint: 'edit the file (the server re-reads it), or run the server without --catalog to keep the catalog in the upstream',
  });
}

export interface StaticCatalogOptions {
  file: string;
  /** The upstream its images are in: an image named with the upstream's host is taken as the upstream names it. */
  upstream?: Pick<Upstream, 'registry' | 'location'>;
  /** How often to check the file for changes. Default 30 s. */
  ttlMs?: number;
}

/** A JSON file `{ "entries": { "JDK11.0": {…} } }` (or the bare map), re-read when it changes. */
export class StaticCatalog implements Catalog {
  readonly writable = false;
  readonly location: string;
  readonly #ttlMs: number;
  readonly #upstream: Pick<Upstream, 'registry' | 'location'> | undefined;
  #cache: { entries: CatalogEntries; mtimeMs: number; checkedAt: number } | undefined;

  constructor(options: StaticCatalogOptions) {
    this.location = options.file;
    this.#ttlMs = options.ttlMs ?? 30_000;
    this.#upstream = options.upstream;
  }

  async entries(): Promise<CatalogEntries> {
    const now = Date.now();
    if (this.#cache && now - this.#cache.checkedAt < this.#ttlMs) return this.#cache.entries;
    const st = await stat(this.location);
    if (this.#cache && this.#cache.mtimeMs === st.mtimeMs) {
      this.#cache.checkedAt = now;
      return this.#cache.entries;
    }
    let json: unknown;
    try {
      json = JSON.parse(await readFile(this.location, 'utf8'));
    } catch (err) {
      throw new HostpullError('CATALOG_INVALID', `catalog file ${this.location} is not valid JSON: ${(err as Error).message}`, { cause: err });
    }
    const entries = parseCatalogDocument(json, `catalog file ${this.location}`, this.#upstream);
    this.#cache = { entries, mtimeMs: st.mtimeMs, checkedAt: now };
    return entries;
  }

  async put(): Promise<void> {
    throw readOnly(this.location);
  }

  async remove(): Promise<boolean> {
    throw readOnly(this.location);
  }
}

/** Artifact type of a catalog entry manifest. */
const CATALOG_ENTRY_TYPE = 'application/vnd.hostpull.catalog.entry.v1+json';
/** Manifest annotation holding the entry JSON (or `{"deleted":true}` for a removed code name). */
const CATALOG_ENTRY_ANNOTATION = 'dev.hostpull.catalog.entry';
/** image-spec manifest.md "Guidance for an Empty Descriptor". */
const EMPTY_JSON = Buffer.from('{}');

export interface UpstreamCatalogOptions {
  upstream: Upstream;
  /** Repository holding the catalog, default `<namespace>/catalog`. */
  repository: string;
  /** Cache lifetime. Default 30 s. */
  ttlMs?: number;
  /** Manifest reads in flight while refreshing. Default 8. */
  concurrency?: number;
}

/**
 * The catalog kept in the upstream itself, so every server replica in front of the same upstream
 * shares it. Each code name is its own tag in the catalog repository, pointing at a tiny OCI
 * artifact whose annotation holds the entry. A registry has no conditional PUT, so one document
 * for the whole catalog would lose updates when two replicas register different code names at
 * once (read A, read B, write A, write B drops A). With one tag per code name, writers of
 * different code names never touch the same object; for the same code name the last write wins,
 * which is what re-registering means. Removal writes a tombstone (the Upstream interface has no
 * delete, and registries often disable it).
 */
export class UpstreamCatalog implements Catalog {
  readonly writable = true;
  readonly location: string;
  readonly #upstream: Upstream;
  readonly #repo: string;
  readonly #ttlMs: number;
  readonly #concurrency: number;
  #cache: { entries: CatalogEntries; at: number } | undefined;
  #inflight: Promise<CatalogEntries> | undefined;

  constructor(options: UpstreamCatalogOptions) {
    this.#upstream = options.upstream;
    this.#repo = options.repository;
    this.#ttlMs = options.ttlMs ?? 30_000;
    this.#concurrency = options.concurrency ?? 8;
    this.location = `${options.upstream.location} ${this.#repo}`;
  }

  async entries(signal?: AbortSignal): Promise<CatalogEntries> {
    if (this.#cache && Date.now() - this.#cache.at < this.#ttlMs) return this.#cache.entries;
    this.#inflight ??= this.#read(signal).finally(() => {
      this.#inflight = undefined;
    });
    return this.#inflight;
  }

  /** The entry stored under a code name's tag: an entry, 'deleted', or null when never registered. */
  async #readOne(code: string, signal?: AbortSignal): Promise<CatalogEntry | 'deleted' | null> {
    const stored = await this.#upstream.getManifest(this.#repo, code, signal);
    if (!stored) return null;
    const parsed = parseManifest(stored.bytes, stored.mediaType, `catalog entry ${code} in ${this.location}`);
    const raw = parsed.kind === 'manifest' ? parsed.manifest.annotations?.[CATALOG_ENTRY_ANNOTATION] : undefined;
    if (raw === undefined) throw new HostpullError('CATALOG_INVALID', `${this.location}:${code} is not a hostpull catalog entry`);
    let json: unknown;
    try {
      json = JSON.parse(raw);
    } catch (err) {
      throw new HostpullError('CATALOG_INVALID', `${this.location}:${code}: entry is not JSON`, { cause: err });
    }
    if (typeof json === 'object' && json !== null && (json as { deleted?: unknown }).deleted === true) return 'deleted';
    return parseCatalogEntry(code, json);
  }

  async #read(signal?: AbortSignal): Promise<CatalogEntries> {
    const tags = (await this.#upstream.listTags(this.#repo, signal)) ?? [];
    const found: Array<[string, CatalogEntry]> = [];
    let next = 0;
    const worker = async () => {
      while (next < tags.length) {
        const code = tags[next++]!;
        if (!isCodeName(code)) continue;
        const e = await this.#readOne(code, signal);
        if (e && e !== 'deleted') found.push([code, e]);
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.#concurrency, tags.length) }, worker));
    const entries: CatalogEntries = new Map(found.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)));
    this.#cache = { entries, at: Date.now() };
    return entries;
  }

  async #write(code: string, value: unknown, signal?: AbortSignal): Promise<void> {
    const emptyDigest = digestOf(EMPTY_JSON);
    await this.#upstream.putBlob(this.#repo, emptyDigest, EMPTY_JSON.length, EMPTY_JSON, signal ? { signal } : {});
    const empty = { mediaType: MediaType.OciEmptyJson, digest: emptyDigest, size: EMPTY_JSON.length };
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaType.OciManifest,
        artifactType: CATALOG_ENTRY_TYPE,
        config: empty,
        layers: [empty],
        annotations: { [CATALOG_ENTRY_ANNOTATION]: JSON.stringify(value), 'dev.hostpull.code': code },
      }),
    );
    await this.#upstream.putManifest(this.#repo, code, manifest, MediaType.OciManifest, signal);
    this.#cache = undefined;
  }

  async put(code: string, entry: CatalogEntry, signal?: AbortSignal): Promise<void> {
    validateCodeName(code);
    await this.#write(code, entry, signal);
  }

  async remove(code: string, signal?: AbortSignal): Promise<boolean> {
    validateCodeName(code);
    const current = await this.#readOne(code, signal);
    if (current === null || current === 'deleted') return false;
    await this.#write(code, { deleted: true }, signal);
    return true;
  }
}
