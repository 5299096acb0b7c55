import type { Logger } from '../log.js';
import { digestOf, type Descriptor, type Digest, type ImageReference } from '../oci/index.js';
import { RegistryClient, registryOrigin, isRegistryError } from '../registry/index.js';
import type { BlobBody, BlobRead, ByteRange, StoredManifest, Upstream } from './upstream.js';

export interface RegistryUpstreamOptions {
  /** `http://host:port`, `https://host:port` or `host:port` (https unless loopback/insecure). */
  url: string;
  /** Hosts allowed over plain http besides loopback. Default []. */
  insecureRegistries?: string[];
  /** Retries per request; lower than the client's default because a client waits on us. Default 2. */
  retries?: number;
  logger?: Logger;
  /** Injected client (tests, shared pools); default a new RegistryClient owned by this upstream. */
  client?: RegistryClient;
}

function isNotFound(err: unknown): boolean {
  return isRegistryError(err) && (err.status === 404 || err.code === 'MANIFEST_UNKNOWN' || err.code === 'BLOB_UNKNOWN' || err.code === 'NAME_UNKNOWN');
}

/** An OCI registry (CNCF distribution in tests) as the server's upstream, over RegistryClient. */
export class RegistryUpstream implements Upstream {
  readonly kind = 'registry' as const;
  readonly location: string;
  readonly registry: string;
  readonly #origin: string;
  readonly #client: RegistryClient;
  readonly #ownsClient: boolean;

  constructor(options: RegistryUpstreamOptions) {
    const m = /^(?:(https?):\/\/)?([^/]+)\/*$/i.exec(options.url.trim());
    this.registry = m ? m[2]! : options.url;
    const insecure = [...(options.insecureRegistries ?? [])];
    if (m?.[1]?.toLowerCase() === 'http') insecure.push(this.registry);
    this.#origin = registryOrigin(this.registry, insecure);
    this.location = this.#origin;
    this.#ownsClient = !options.client;
    this.#client =
      options.client ??
      new RegistryClient({ insecureRegistries: insecure, retries: options.retries ?? 2, ...(options.logger ? { logger: options.logger } : {}), userAgent: 'hostpull-serve/0.1' });
  }

  #ref(repo: string, reference: string): ImageReference {
    return reference.includes(':') ? { registry: this.registry, repository: repo, digest: reference as Digest } : { registry: this.registry, repository: repo, tag: reference };
  }

  #repo(repo: string) {
    return { registry: this.registry, repository: repo };
  }

  async getManifest(repo: string, reference: string, signal?: AbortSignal): Promise<StoredManifest | null> {
    try {
      return await this.#client.getManifest(this.#ref(repo, reference), signal ? { signal } : {});
    } catch (err) {
      if (isNotFound(err)) return null;
      throw err;
    }
  }

  async blobSize(repo: string, digest: Digest, signal?: AbortSignal): Promise<number | null> {
    return this.#client.blobExists(this.#repo(repo), digest, signal ? { signal } : {});
  }

  async getBlob(repo: string, digest: Digest, range?: ByteRange, signal?: AbortSignal): Promise<BlobRead | null> {
    try {
      if (range && range.end !== undefined) {
        // A bounded range (a lazy node's span): ask for exactly it, so the registry sends only
        // those bytes (an open range would stream the rest of the blob to us and be cut here).
        const stream = await this.#client.getBlobRange(this.#repo(repo), digest, range.start, range.end, signal ? { signal } : {});
        return { stream, size: stream.totalSize ?? (await this.blobSize(repo, digest, signal)) ?? range.end + 1, start: range.start };
      }
      const res = await this.#client.getBlob(this.#repo(repo), digest, { ...(range?.start ? { offset: range.start } : {}), ...(signal ? { signal } : {}) });
      let size = res.totalSize;
      if (size === undefined || res.offset !== 0 || range?.start) {
        // Content-Length of a partial response is not the blob size; ask once.
        size = (await this.blobSize(repo, digest, signal)) ?? size ?? 0;
      }
      return { stream: res.stream, size, start: res.offset };
    } catch (err) {
      if (isNotFound(err)) return null;
      throw err;
    }
  }

  async putBlob(repo: string, digest: Digest, size: number, body: BlobBody, opts: { mountFrom?: string; signal?: AbortSignal } = {}): Promise<void> {
    await this.#client.pushBlob(this.#repo(repo), digest, size, body, opts);
  }

  async putManifest(repo: string, tag: string | undefined, bytes: Buffer, mediaType: string, signal?: AbortSignal): Promise<Digest> {
    const ref = this.#ref(repo, tag ?? digestOf(bytes));
    return this.#client.putManifest(ref, bytes, mediaType, signal ? { signal } : {});
  }

  async listTags(repo: string, signal?: AbortSignal): Promise<string[] | null> {
    try {
      return (await this.#client.listTags(this.#repo(repo), signal ? { signal } : {})).sort();
    } catch (err) {
      if (isNotFound(err)) return null;
      throw err;
    }
  }

  async referrersApi(repo: string, subject: Digest, artifactType: string | undefined, signal?: AbortSignal): Promise<Descriptor[] | null> {
    try {
      return await this.#client.getReferrers(this.#repo(repo), subject, { ...(artifactType ? { artifactType } : {}), ...(signal ? { signal } : {}) });
    } catch (err) {
      if (isNotFound(err)) return null;
      throw err;
    }
  }

  blobUrl(repo: string, digest: Digest): string {
    return `${this.#origin}/v2/${repo}/blobs/${digest}`;
  }

  async close(): Promise<void> {
    if (this.#ownsClient) await this.#client.close();
  }
}
