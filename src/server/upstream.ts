import type { Readable } from 'node:stream';
import type { Descriptor, Digest } from '../oci/index.js';

/** A manifest as stored upstream: the exact bytes (their digest is the manifest's identity). */
export interface StoredManifest {
  bytes: Buffer;
  digest: Digest;
  mediaType: string;
}

/** An inclusive byte range; `end` undefined means "to the end of the blob". */
export interface ByteRange {
  start: number;
  end?: number;
}

export interface BlobRead {
  /** The bytes from `start` (0 unless a range was honoured) to the end of the requested range. */
  stream: Readable;
  /** Size of the whole blob. */
  size: number;
  /** First byte the stream starts at: a registry may ignore a Range and send everything. */
  start: number;
}

/** The body of a blob push: bytes in memory, or a factory so a retry can re-read a file. */
export type BlobBody = Buffer | (() => Readable);

/**
 * Where package images, generated composites and the shared catalog live. Two implementations:
 * an OCI image layout directory (embedded default) and a remote OCI registry. Everything the
 * server keeps beyond its caches goes through this interface, which is what lets several server
 * replicas share one upstream.
 *
 * Methods return null for "not there" and throw HostpullError for everything else: the registry
 * client's RegistryError for a registry (answered as a gateway: 503 while it cannot be reached,
 * 502 otherwise), UPSTREAM_ERROR when a layout holds something invalid.
 */
export interface Upstream {
  /** 'layout' or 'registry': decides whether blob redirects make sense. */
  readonly kind: 'layout' | 'registry';
  /** Human-readable location for messages (directory or registry URL). */
  readonly location: string;
  /** The registry's `host[:port]` as references name it; undefined for an OCI layout. */
  readonly registry: string | undefined;
  getManifest(repo: string, reference: string, signal?: AbortSignal): Promise<StoredManifest | null>;
  getBlob(repo: string, digest: Digest, range?: ByteRange, signal?: AbortSignal): Promise<BlobRead | null>;
  blobSize(repo: string, digest: Digest, signal?: AbortSignal): Promise<number | null>;
  /** Stores a blob; `mountFrom` names a repository that already holds it (cross-repo mount). */
  putBlob(repo: string, digest: Digest, size: number, body: BlobBody, opts?: { mountFrom?: string; signal?: AbortSignal }): Promise<void>;
  /** Stores a manifest, tagged when `tag` is given; returns its digest. */
  putManifest(repo: string, tag: string | undefined, bytes: Buffer, mediaType: string, signal?: AbortSignal): Promise<Digest>;
  /** Tags of a repository, sorted; null when the repository is unknown. */
  listTags(repo: string, signal?: AbortSignal): Promise<string[] | null>;
  /**
   * The upstream's referrers API (distribution-spec v1.1): null when it has none. Absent for
   * upstreams that never have one (OCI layout); callers use listReferrers() in referrers.ts.
   */
  referrersApi?(repo: string, subject: Digest, artifactType: string | undefined, signal?: AbortSignal): Promise<Descriptor[] | null>;
  /** Where a client may fetch the blob directly (for 307 redirects), if the upstream is reachable by URL. */
  blobUrl?(repo: string, digest: Digest): string;
  close(): Promise<void>;
}
