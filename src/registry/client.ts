import { Readable } from 'node:stream';
import { silentLogger, type Logger } from '../log.js';
import { digestAlgorithm, digestOf, isDigest, manifestSelector, MANIFEST_ACCEPT, MediaType, parseManifest, type Descriptor, formatReference, shortDigest, type Digest, type ImageReference } from '../oci/index.js';
import { chainCredentials, envCredentials, staticCredentials, type Credential, type CredentialSource } from './auth/credentials.js';
import { authFilesCredentials } from './auth/auth-files.js';
import { readBounded } from '../util/index.js';
import { contentLength, dumpBody, headerValue } from './body.js';
import type { HttpClientKind } from './dispatcher.js';
import { extraCaFiles } from './extra-ca.js';
import { RegistryError } from './errors.js';
import { pushBlob, putManifest, type PushBlobOptions } from './push.js';
import { decideRangeResponse, rangeError } from './range.js';
import { redactUrl } from './redact.js';
import { logRetries, RetryPolicy, type RetryBudget, type RetryBudgetOptions, type RetryNotice } from './retry.js';
import { Transport, type RegistryRequest } from './transport.js';

export interface RepositoryRef {
  /** `host[:port]` */
  registry: string;
  repository: string;
}

export interface RegistryClientOptions {
  /** Hosts (`host` or `host:port`) that may be spoken to over plain http. Loopback always may. Default: []. */
  insecureRegistries?: string[];
  /**
   * Where credentials come from. A {@link CredentialSource} is used alone; a plain map
   * `{ 'host:port': {username, password} }` is consulted first, then the defaults.
   * Default: `HOSTPULL_REGISTRY_AUTH`, then the docker config (`$DOCKER_CONFIG` or ~/.docker).
   */
  credentials?: CredentialSource | Record<string, Credential>;
  /**
   * At most this many retries in a row of an idempotent request (GET/HEAD, whole blob uploads) or
   * of a blob download's resumes. Default: as many as `retryBudgetMs` allows.
   */
  retries?: number;
  /** Base delay of the exponential backoff. Default: 200 ms. */
  retryBaseDelayMs?: number;
  /** Upper bound of a computed backoff delay. Default: 10 000 ms. */
  retryMaxDelayMs?: number;
  /** Upper bound of a server's `Retry-After` we wait for. Default: 60 000 ms. */
  retryAfterCapMs?: number;
  /**
   * How long a registry may keep failing (from the first failure with no progress since) before
   * a request or a download gives up. Default: 60 000 ms.
   */
  retryBudgetMs?: number;
  /** Time from sending a request to the end of the response headers. Default: 30 000 ms. */
  headersTimeoutMs?: number;
  /**
   * Time a response body may go without a byte (an idle timeout: a slow but steady download is
   * never cut). A blob download that stalls this long resumes with Range. Default: 30 000 ms.
   */
  bodyTimeoutMs?: number;
  /** Connections per origin kept by the HTTP client. Default: 8. */
  connections?: number;
  /**
   * The HTTP client: undici's Agent (default), or node:http for a command that sends a few
   * requests and exits, where undici's load is most of the cost of its first request
   * (node-http-dispatcher.ts).
   */
  httpClient?: HttpClientKind;
  /** Largest manifest accepted. Default: 4 MiB (what distribution itself accepts). */
  maxManifestBytes?: number;
  /** Environment for HOSTPULL_REGISTRY_AUTH / DOCKER_CONFIG. Default: process.env. */
  env?: NodeJS.ProcessEnv;
  logger?: Logger;
  /** Default: `hostpull/0.1`. */
  userAgent?: string;
}

export interface RequestOptions {
  signal?: AbortSignal;
  /** Told of the request's retries (a pull turns them into events). */
  onRetry?: (notice: RetryNotice) => void;
}

export interface ManifestHead {
  digest: Digest;
  mediaType: string;
  size: number;
}

export interface FetchedManifest {
  bytes: Buffer;
  digest: Digest;
  mediaType: string;
}

export interface BlobResponse {
  stream: Readable;
  /** Where the stream starts in the blob: the requested offset, or 0 if the server ignored Range. */
  offset: number;
  /** Size of the whole blob, when the server said. */
  totalSize?: number;
  /** Last byte of the stream, when a closed range was asked for and answered (206). */
  end?: number;
}

const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

/**
 * Tens of seconds, not undici's five minutes: a registry that has not answered or sent a byte
 * for this long is treated as a broken connection (retried, a blob resumed), while a loaded
 * registry on a slow link still gets far longer than it ever needs per chunk.
 */
const DEFAULT_HEADERS_TIMEOUT_MS = 30_000;
const DEFAULT_BODY_TIMEOUT_MS = 30_000;

function isCredentialSource(c: unknown): c is CredentialSource {
  return typeof c === 'object' && c !== null && typeof (c as { get?: unknown }).get === 'function';
}

function pullScope(repository: string): string {
  return `repository:${repository}:pull`;
}

/**
 * What reading an image from a registry takes: the part of {@link RegistryClient} a pull uses.
 * The pull pipeline depends on this, so a test can hand it a fake registry without casts.
 */
export interface RegistryReader {
  /** `HEAD` a manifest: its digest, media type and size, or null when the registry has none. */
  headManifest(ref: ImageReference, opts?: RequestOptions & { accept?: string }): Promise<ManifestHead | null>;
  /** `GET` a manifest, verified against the reference's digest or the registry's. */
  getManifest(ref: ImageReference, opts?: RequestOptions & { accept?: string }): Promise<FetchedManifest>;
  /** A blob's body from `offset` (Range), with the offset the registry actually started at. */
  getBlob(repo: RepositoryRef, digest: Digest, opts?: RequestOptions & { offset?: number; retry?: RetryBudget }): Promise<BlobResponse>;
  /** A small blob (a config) read whole, at most `maxBytes`, verified against its digest. */
  fetchBlobBytes(repo: RepositoryRef, digest: Digest, maxBytes: number, opts?: RequestOptions): Promise<Buffer>;
  /** One retry budget for an operation of several requests (retry.ts). */
  retryBudget(registry: string, options?: RetryBudgetOptions): RetryBudget;
}

/** The OCI distribution client (distribution-spec v1.1 pull and push). */
export class RegistryClient implements RegistryReader {
  readonly #transport: Transport;
  readonly #logger: Logger;
  readonly #retry: RetryPolicy;
  readonly #maxManifest: number;

  constructor(opts: RegistryClientOptions = {}) {
    const env = opts.env ?? process.env;
    this.#logger = opts.logger ?? silentLogger();
    const defaults = chainCredentials(envCredentials(env), authFilesCredentials({ env, logger: this.#logger }));
    const credentials = isCredentialSource(opts.credentials)
      ? opts.credentials
      : opts.credentials
        ? chainCredentials(staticCredentials(opts.credentials), defaults)
        : defaults;
    this.#maxManifest = opts.maxManifestBytes ?? MAX_MANIFEST_BYTES;
    this.#retry = new RetryPolicy({
      ...(opts.retries !== undefined ? { maxRetries: opts.retries } : {}),
      ...(opts.retryBaseDelayMs !== undefined ? { baseDelayMs: opts.retryBaseDelayMs } : {}),
      ...(opts.retryMaxDelayMs !== undefined ? { maxDelayMs: opts.retryMaxDelayMs } : {}),
      ...(opts.retryAfterCapMs !== undefined ? { retryAfterCapMs: opts.retryAfterCapMs } : {}),
      ...(opts.retryBudgetMs !== undefined ? { budgetMs: opts.retryBudgetMs } : {}),
      onRetry: logRetries(this.#logger),
    });
    this.#transport = new Transport({
      insecureRegistries: opts.insecureRegistries ?? [],
      credentials,
      retry: this.#retry,
      headersTimeoutMs: opts.headersTimeoutMs ?? DEFAULT_HEADERS_TIMEOUT_MS,
      bodyTimeoutMs: opts.bodyTimeoutMs ?? DEFAULT_BODY_TIMEOUT_MS,
      logger: this.#logger,
      userAgent: opts.userAgent ?? 'hostpull/0.1',
      connections: opts.connections ?? 8,
      httpClient: opts.httpClient ?? 'undici',
      extraCaFiles: extraCaFiles(env),
    });
  }

  /** `GET /v2/`: checks that the registry speaks distribution and that we may talk to it. */
  async ping(registry: string, signal?: AbortSignal): Promise<void> {
    const res = await this.#transport.request({ registry, method: 'GET', url: '/v2/', scopes: [], ...(signal ? { signal } : {}) });
    if (res.status === 200) return dumpBody(res.body);
    throw await this.#transport.fail(res, 'GET', { registry });
  }

  #manifestRequest(method: 'HEAD' | 'GET', ref: ImageReference, opts: RequestOptions & { accept?: string }) {
    return this.#transport.request({
      registry: ref.registry,
      method,
      url: manifestPath(ref),
      headers: { accept: opts.accept ?? MANIFEST_ACCEPT },
      scopes: [pullScope(ref.repository)],
      ...requestOpts(opts),
    });
  }

  /** `HEAD` a manifest: its digest, media type and size, or null when the registry has none. */
  async headManifest(ref: ImageReference, opts: RequestOptions & { accept?: string } = {}): Promise<ManifestHead | null> {
    const res = await this.#manifestRequest('HEAD', ref, opts);
    if (res.status === 404) {
      await dumpBody(res.body);
      return null;
    }
    if (res.status !== 200) throw await this.#transport.fail(res, 'HEAD', { registry: ref.registry, notFoundCode: 'MANIFEST_UNKNOWN' });
    await dumpBody(res.body);
    const header = headerValue(res.headers, 'docker-content-digest');
    const size = contentLength(res.headers);
    const mediaType = mediaTypeOf(headerValue(res.headers, 'content-type'));
    const digest = ref.digest ?? (header && isDigest(header) ? header : undefined);
    if (digest === undefined || size === undefined || !mediaType) {
      // The registry did not say enough on HEAD (no Docker-Content-Digest): a verified GET does.
      const m = await this.getManifest(ref, opts);
      return { digest: m.digest, mediaType: m.mediaType, size: m.bytes.length };
    }
    return { digest, mediaType, size };
  }

  /**
   * `GET` a manifest, at most {@link MAX_MANIFEST_BYTES}, refused while streaming past that. The
   * bytes are checked against the digest in the reference, else against Docker-Content-Digest.
   */
  async getManifest(ref: ImageReference, opts: RequestOptions & { accept?: string } = {}): Promise<FetchedManifest> {
    const res = await this.#manifestRequest('GET', ref, opts);
    if (res.status !== 200) throw await this.#transport.fail(res, 'GET', { registry: ref.registry, notFoundCode: 'MANIFEST_UNKNOWN' });
    const where = `manifest ${formatReference(ref)}`;
    const declared = contentLength(res.headers);
    if (declared !== undefined && declared > this.#maxManifest) {
      res.body.destroy();
      throw tooLarge(where, declared, this.#maxManifest);
    }
    const bytes = await readBounded(res.body, this.#maxManifest);
    if (!bytes) throw tooLarge(where, undefined, this.#maxManifest);
    const header = headerValue(res.headers, 'docker-content-digest');
    let digest: Digest;
    if (ref.digest) {
      digest = verify(bytes, ref.digest, where, 'the reference');
    } else if (header && isDigest(header)) {
      digest = verify(bytes, header, where, 'the Docker-Content-Digest header');
    } else {
      digest = digestOf(bytes);
    }
    let mediaType = mediaTypeOf(headerValue(res.headers, 'content-type'));
    if (!mediaType || mediaType === 'application/json' || mediaType === 'text/plain') {
      // Some registries answer with a generic type; the manifest names its own.
      try {
        const mt = (JSON.parse(bytes.toString('utf8')) as { mediaType?: unknown }).mediaType;
        if (typeof mt === 'string') mediaType = mt;
      } catch {
        // Not JSON: parseManifest will say so to whoever reads it.
      }
    }
    return { bytes, digest, mediaType };
  }

  /**
   * The retries of one operation against `registry` under this client's policy: a caller with
   * retries of its own (a download resuming with Range) passes it to {@link getBlob} so that both
   * share one budget.
   */
  retryBudget(registry: string, options: RetryBudgetOptions = {}): RetryBudget {
    return this.#retry.begin(registry, options);
  }

  /**
   * `GET` a blob as a raw stream (never buffered). With `offset`, asks for the rest from there; the
   * returned `offset` is where the stream really starts (0 when the server ignored Range).
   * The caller verifies size and digest while reading.
   */
  async getBlob(repo: RepositoryRef, digest: Digest, opts: RequestOptions & { offset?: number; end?: number; retry?: RetryBudget } = {}): Promise<BlobResponse> {
    const offset = opts.offset ?? 0;
    const ranged = offset > 0 || opts.end !== undefined;
    const headers: Record<string, string> = {};
    if (ranged) headers.range = `bytes=${offset}-${opts.end ?? ''}`;
    const res = await this.#transport.request({
      registry: repo.registry,
      method: 'GET',
      url: blobPath(repo, digest),
      headers,
      scopes: [pullScope(repo.repository)],
      ...(opts.retry ? { retry: opts.retry } : {}),
      ...requestOpts(opts),
    });
    if (ranged && (res.status === 200 || res.status === 206)) {
      const d = decideRangeResponse(res.status, offset, headerValue(res.headers, 'content-range'), contentLength(res.headers), opts.end);
      if (d.kind === 'error') {
        await dumpBody(res.body);
        throw rangeError('GET', redactUrl(res.url), d.reason, res.status);
      }
      const out: BlobResponse = { stream: res.body, offset: d.kind === 'resume' ? offset : 0 };
      if (d.kind === 'resume' && opts.end !== undefined) out.end = opts.end;
      if (d.totalSize !== undefined) out.totalSize = d.totalSize;
      return out;
    }
    if (res.status !== 200) throw await this.#transport.fail(res, 'GET', { registry: repo.registry, notFoundCode: 'BLOB_UNKNOWN' });
    const out: BlobResponse = { stream: res.body, offset: 0 };
    const len = contentLength(res.headers);
    if (len !== undefined) out.totalSize = len;
    return out;
  }

  /**
   * `GET` bytes [start, end] of a blob as a stream of exactly those bytes: {@link getBlob} with a
   * closed range, and a server that ignores Range (200, the whole blob) read up to the range and
   * cut there. The caller verifies the bytes.
   */
  async getBlobRange(repo: RepositoryRef, digest: Digest, start: number, end: number, opts: RequestOptions & { retry?: RetryBudget } = {}): Promise<Readable & { totalSize?: number }> {
    const r = await this.getBlob(repo, digest, { ...opts, offset: start, end });
    const stream = r.end === end ? r.stream : sliceStream(r.stream, start - r.offset, end - r.offset);
    return Object.assign(stream, r.totalSize !== undefined ? { totalSize: r.totalSize } : {});
  }

  /**
   * `GET /v2/<name>/referrers/<digest>` (distribution-spec v1.1): the descriptors of the manifests
   * whose subject is `digest`, or null when the registry has no referrers API (it answers 404, as
   * CNCF distribution 2.8 does); then the caller reads the tag-schema fallback.
   */
  async getReferrers(repo: RepositoryRef, digest: Digest, opts: RequestOptions & { artifactType?: string } = {}): Promise<Descriptor[] | null> {
    const query = opts.artifactType ? `?${new URLSearchParams({ artifactType: opts.artifactType })}` : '';
    const res = await this.#transport.request({
      registry: repo.registry,
      method: 'GET',
      url: `/v2/${repo.repository}/referrers/${digest}${query}`,
      headers: { accept: MediaType.OciIndex },
      scopes: [pullScope(repo.repository)],
      ...requestOpts(opts),
    });
    if (res.status === 404 || res.status === 405) {
      await dumpBody(res.body);
      return null;
    }
    if (res.status !== 200) throw await this.#transport.fail(res, 'GET', { registry: repo.registry });
    const bytes = await readBounded(res.body, this.#maxManifest);
    if (!bytes) throw tooLarge(`referrers of ${digest} in ${repo.registry}/${repo.repository}`, undefined, this.#maxManifest);
    const parsed = parseManifest(bytes, MediaType.OciIndex, `referrers of ${digest}`);
    return parsed.kind === 'index' ? parsed.index.manifests : [];
  }

  /** A small blob (config, JSON) in memory, refused past `maxBytes`, digest verified. */
  async fetchBlobBytes(repo: RepositoryRef, digest: Digest, maxBytes: number, opts: RequestOptions = {}): Promise<Buffer> {
    const { stream } = await this.getBlob(repo, digest, opts);
    const where = `blob ${shortDigest(digest)} from ${repo.registry}/${repo.repository}`;
    const bytes = await readBounded(stream, maxBytes);
    if (!bytes) throw tooLarge(where, undefined, maxBytes);
    verify(bytes, digest, where, 'its descriptor');
    return bytes;
  }

  /**
   * GET on a hostpull server's own API beside /v2 (`/hostpull/v1/…`): the body of a 200, at most
   * `maxBytes` (else BLOB_TOO_LARGE), or undefined for any other status (a plain registry has no
   * such path). One attempt, no retries: what this API gives are hints a caller can do without.
   * Through this client's connections, so a command that already talks to the registry loads no
   * second HTTP stack for it (Node's global fetch is a copy of undici of its own, ~50 ms to load).
   */
  async getServerApi(registry: string, path: string, maxBytes: number, signal?: AbortSignal): Promise<Buffer | undefined> {
    const res = await this.#transport.request({ registry, method: 'GET', url: path, scopes: [], retry: false, ...(signal ? { signal } : {}) });
    if (res.status !== 200) {
      await dumpBody(res.body);
      return undefined;
    }
    const bytes = await readBounded(res.body, maxBytes);
    if (!bytes) throw new RegistryError('BLOB_TOO_LARGE', `${registry}${path}: the body exceeds the ${maxBytes}-byte limit`);
    return bytes;
  }

  /** PUT of a JSON document on a hostpull server's own API (see getServerApi): the status it answered. One attempt. */
  async putServerApi(registry: string, path: string, document: unknown, signal?: AbortSignal): Promise<number> {
    const body = Buffer.from(JSON.stringify(document));
    const res = await this.#transport.request({ registry, method: 'PUT', url: path, headers: { 'content-type': 'application/json' }, body, scopes: [], retry: false, ...(signal ? { signal } : {}) });
    await dumpBody(res.body);
    return res.status;
  }

  /** `HEAD` a blob: its size, or null when the repository does not have it. */
  async blobExists(repo: RepositoryRef, digest: Digest, opts: RequestOptions & { scopes?: string[] } = {}): Promise<number | null> {
    const res = await this.#transport.request({
      registry: repo.registry,
      method: 'HEAD',
      url: blobPath(repo, digest),
      scopes: opts.scopes ?? [pullScope(repo.repository)],
      ...requestOpts(opts),
    });
    if (res.status !== 200 && res.status !== 404) {
      throw await this.#transport.fail(res, 'HEAD', { registry: repo.registry, notFoundCode: 'BLOB_UNKNOWN' });
    }
    await dumpBody(res.body);
    if (res.status === 404) return null;
    return contentLength(res.headers) ?? 0;
  }

  /**
   * Uploads a blob unless the repository already has it: a cross-repository mount when
   * `mountFrom` names a repository on the same registry that has it, else a monolithic upload.
   */
  async pushBlob(repo: RepositoryRef, digest: Digest, size: number, body: Buffer | (() => Readable), opts: PushBlobOptions = {}): Promise<void> {
    await pushBlob(this.#pushContext(), repo, digest, size, body, opts);
  }

  /** `PUT` a manifest under a tag or digest; returns its digest (computed here, checked against the registry's). */
  async putManifest(ref: ImageReference, bytes: Buffer, mediaType: string, opts: RequestOptions = {}): Promise<Digest> {
    return putManifest(this.#pushContext(), ref, bytes, mediaType, opts);
  }

  /**
   * `GET /v2/<name>/tags/list`. With `n`/`last`, one page as asked; with neither, follows the
   * `Link: <…>; rel="next"` header for at most 100 pages.
   */
  async listTags(repo: RepositoryRef, opts: RequestOptions & { n?: number; last?: string } = {}): Promise<string[]> {
    const params = new URLSearchParams();
    if (opts.n !== undefined) params.set('n', String(opts.n));
    if (opts.last !== undefined) params.set('last', opts.last);
    const paginate = opts.n === undefined && opts.last === undefined;
    let url = `/v2/${repo.repository}/tags/list${params.size ? `?${params}` : ''}`;
    const tags: string[] = [];
    for (let page = 0; page < 100; page++) {
      const res = await this.#transport.request({
        registry: repo.registry,
        method: 'GET',
        url,
        scopes: [pullScope(repo.repository)],
        ...requestOpts(opts),
      });
      if (res.status !== 200) throw await this.#transport.fail(res, 'GET', { registry: repo.registry, notFoundCode: 'NAME_UNKNOWN' });
      const bytes = await readBounded(res.body, this.#maxManifest);
      if (!bytes) throw tooLarge(`tag list of ${repo.registry}/${repo.repository}`, undefined, this.#maxManifest);
      let json: { tags?: unknown };
      try {
        json = JSON.parse(bytes.toString('utf8')) as typeof json;
      } catch (err) {
        throw new RegistryError('REGISTRY_ERROR', `GET ${redactUrl(res.url)}: tag list is not JSON`, { cause: err });
      }
      if (Array.isArray(json.tags)) for (const t of json.tags) if (typeof t === 'string') tags.push(t);
      const next = paginate ? nextLink(headerValue(res.headers, 'link')) : undefined;
      if (!next) return tags;
      // Only follow links on the same registry: the next page is resolved against this one.
      const nextUrl = new URL(next, res.url);
      if (nextUrl.origin !== new URL(res.url).origin) return tags;
      url = nextUrl.pathname + nextUrl.search;
    }
    this.#logger.warn({ repository: repo.repository }, 'tag list truncated after 100 pages');
    return tags;
  }

  /** Closes the connection pool. */
  async close(): Promise<void> {
    await this.#transport.close();
  }

  #pushContext() {
    return { transport: this.#transport, retry: this.#retry, logger: this.#logger, client: this };
  }
}

/** Bytes [start, end] of a whole-blob stream; the rest is not read. */
function sliceStream(body: Readable, start: number, end: number): Readable {
  return Readable.from(
    (async function* () {
      let pos = 0;
      try {
        for await (const chunk of body) {
          const buf = chunk as Buffer;
          const from = Math.max(start - pos, 0);
          const to = Math.min(buf.length, end + 1 - pos);
          pos += buf.length;
          if (to > from) yield buf.subarray(from, to);
          if (pos > end) return;
        }
      } finally {
        body.destroy();
      }
    })(),
    { objectMode: false },
  );
}

/** The transport's side of a method's RequestOptions. */
function requestOpts(opts: RequestOptions): Pick<RegistryRequest, 'signal' | 'onRetry'> {
  return { ...(opts.signal ? { signal: opts.signal } : {}), ...(opts.onRetry ? { onRetry: opts.onRetry } : {}) };
}

function manifestPath(ref: ImageReference): string {
  return `/v2/${ref.repository}/manifests/${manifestSelector(ref)}`;
}

function blobPath(repo: RepositoryRef, digest: Digest): string {
  return `/v2/${repo.repository}/blobs/${digest}`;
}

function mediaTypeOf(contentType: string | undefined): string {
  return (contentType ?? '').split(';')[0]!.trim();
}

function verify(bytes: Buffer, expected: string, where: string, source: string): Digest {
  const expectedDigest = expected as Digest;
  const actual = digestOf(bytes, digestAlgorithm(expectedDigest));
  if (actual !== expectedDigest) {
    throw new RegistryError('DIGEST_MISMATCH', `${where}: content is ${shortDigest(actual)}, ${source} says ${shortDigest(expectedDigest)}`, {
      hint: 'the registry served different bytes than it promised; retry, and report it to the registry operator if it persists',
      details: { expected: expectedDigest, actual },
    });
  }
  return expectedDigest;
}

function tooLarge(where: string, declared: number | undefined, max: number): RegistryError {
  return new RegistryError('MANIFEST_TOO_LARGE', `${where}: ${declared !== undefined ? `${declared} bytes` : 'body'} exceeds the ${max}-byte limit`, {
    hint: 'manifests and configs are small JSON documents; this registry sent something else',
  });
}

/** The `rel="next"` target of an RFC 8288 Link header. */
function nextLink(link: string | undefined): string | undefined {
  if (!link) return undefined;
  for (const part of link.split(/,(?=\s*<)/)) {
    const m = /^\s*<([^>]*)>\s*(.*)$/.exec(part);
    if (m && /(?:^|;)\s*rel="?next"?\s*(?:;|$)/i.test(m[2]!)) return m[1];
  }
  return undefined;
}
