import type { Readable } from 'node:stream';
import type { SecureContext } from 'node:tls';
import { isTransientNetworkFailure } from '../errors.js';
import type { Logger } from '../log.js';
import { parseWwwAuthenticate } from './auth/challenge.js';
import { mergeScopes } from './auth/scope.js';
import { AUTH_ENV, type Credential, type CredentialSource } from './auth/credentials.js';
import { TokenCache, tokenCacheKey, tokenExpiry, type CachedToken } from './auth/token-cache.js';
import { loadDispatcherClass, readBounded } from '../util/index.js';
import { dumpBody, headerValue, readErrorText, type ResponseBody } from './body.js';
import { KEEP_ALIVE_IDLE_MS, type HttpClientKind, type RegistryDispatcher } from './dispatcher.js';
import { errorFromStatus, RegistryError, type StatusErrorContext } from './errors.js';
import { contextWithExtraCa, EXTRA_CA_ENV } from './extra-ca.js';
import { redactUrl } from './redact.js';
import { RETRYABLE_STATUSES, RetryBudget, type RetryNotice, type RetryPolicy } from './retry.js';
import { allowsPlainHttp, assertSchemeAllowed, registryOrigin } from './scheme.js';

/** A request body: bytes, or a factory that opens a fresh stream for each attempt. */
export type RequestBody = Buffer | (() => Readable);

export type HttpMethod = 'GET' | 'HEAD' | 'PUT' | 'POST' | 'PATCH' | 'DELETE';

export interface RegistryRequest {
  registry: string;
  method: HttpMethod;
  /** A path (+query) under the registry's origin, or an absolute URL (an upload `Location`). */
  url: string;
  headers?: Record<string, string>;
  body?: RequestBody;
  /** Token scopes the request needs, e.g. `repository:pkg/jdk:pull`. */
  scopes: string[];
  /**
   * Retry on temporary statuses and connection errors under the client's retry policy. Default:
   * true for GET and HEAD only. A {@link RetryBudget} shares its budget with the caller's own
   * retries (a blob download's Range resumes).
   */
  retry?: boolean | RetryBudget;
  /** Follow 301/302/303/307/308 manually. Default: true for GET and HEAD. */
  followRedirects?: boolean;
  signal?: AbortSignal;
  /** Told of the retries of a budget this request begins (not of a {@link RetryBudget} passed in: its owner chose). */
  onRetry?: (notice: RetryNotice) => void;
}

export interface RegistryResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: ResponseBody;
  /** Where the response finally came from (after redirects). */
  url: URL;
}

export interface TransportOptions {
  insecureRegistries: readonly string[];
  credentials: CredentialSource;
  retry: RetryPolicy;
  /** Time allowed from sending a request to the end of the response headers. */
  headersTimeoutMs: number;
  /** Time allowed without a byte of the response body (an idle timeout, not a total). */
  bodyTimeoutMs: number;
  logger: Logger;
  userAgent: string;
  /** Connections per origin kept by the HTTP client. */
  connections: number;
  /** The HTTP client (dispatcher.ts): undici's Agent, or node:http for a short-lived command. */
  httpClient: HttpClientKind;
  /** PEM files of CA certificates trusted beside Node's bundled roots for https registries (extra-ca.ts); none: Node's default. */
  extraCaFiles?: readonly string[];
  /** Clock for token expiry (tests). */
  now?: () => number;
}

/** What we learnt from a registry's 401: how it wants to be authenticated. */
type AuthScheme = { scheme: 'basic' } | { scheme: 'bearer'; realm: string; service: string | undefined };

const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);
const MAX_REDIRECTS = 5;
const MAX_TOKEN_RESPONSE = 1 << 20;

/**
 * HTTP to registries: one HTTP client (keep-alive, a bounded pool per origin), authentication
 * (Basic, and the distribution Bearer token flow), retries for idempotent requests, and manual
 * redirects so that the Authorization header never follows a redirect to another host.
 */
export class Transport {
  #client: Promise<RegistryDispatcher> | undefined;
  /** undici's Agent for https origins when extra CAs are trusted (see #dispatcher). */
  #tlsClient: Promise<RegistryDispatcher> | undefined;
  readonly #opts: TransportOptions;
  /** What https connections trust when extra CAs are named (see #dispatcher); undefined: Node's default. */
  readonly #tlsContext: (() => Promise<SecureContext>) | undefined;
  readonly #tokens: TokenCache;
  readonly #schemes = new Map<string, AuthScheme>();

  constructor(opts: TransportOptions) {
    this.#opts = opts;
    const files = opts.extraCaFiles ?? [];
    this.#tlsContext = files.length === 0 ? undefined : () => contextWithExtraCa(files, opts.logger);
    this.#tokens = new TokenCache(opts.now);
  }

  origin(registry: string): string {
    return registryOrigin(registry, this.#opts.insecureRegistries);
  }

  async close(): Promise<void> {
    for (const client of [this.#client, this.#tlsClient]) if (client) await (await client).close();
  }

  /**
   * The HTTP client, made at the first request: undici's Agent costs ~30 ms to load
   * (loadDispatcherClass says why not more), which commands that never reach a registry (images,
   * stats, run --pull missing) need not pay.
   *
   * The TLS context of extra CAs (extra-ca.ts) is made at the first request to an https origin:
   * parsing Node's roots and Debian's bundle takes ~40 ms, which a lazy helper or a server
   * talking plain http to a loopback registry must not pay on its first request. node:http makes
   * its TLS agent then by itself; undici's Agent takes its TLS options when made, so https
   * origins get an Agent of their own.
   */
  #dispatcher(url?: URL): Promise<RegistryDispatcher> {
    const { connections } = this.#opts;
    const tlsContext = this.#tlsContext;
    if (this.#opts.httpClient === 'node') {
      this.#client ??= import('./node-http-dispatcher.js').then(({ NodeHttpDispatcher }) => new NodeHttpDispatcher(connections, KEEP_ALIVE_IDLE_MS, tlsContext));
      return this.#client;
    }
    const agent = (secureContext?: SecureContext) =>
      loadDispatcherClass('Agent').then(
        (AgentClass) => new AgentClass({ connections, keepAliveTimeout: KEEP_ALIVE_IDLE_MS, ...(secureContext ? { connect: { secureContext } } : {}) }) as unknown as RegistryDispatcher,
      );
    if (tlsContext && url?.protocol === 'https:') {
      this.#tlsClient ??= tlsContext().then(agent);
      return this.#tlsClient;
    }
    this.#client ??= agent();
    return this.#client;
  }

  /**
   * Sends a request and returns the final response, whatever its status, except: a 401 that
   * authentication cannot fix throws UNAUTHORIZED; connection errors after the retries throw
   * REGISTRY_UNAVAILABLE. The caller must read or dump the returned body.
   */
  async request(req: RegistryRequest): Promise<RegistryResponse> {
    const origin = this.origin(req.registry);
    const idempotent = req.method === 'GET' || req.method === 'HEAD';
    const retry = req.retry instanceof RetryBudget ? req.retry : (req.retry ?? idempotent) ? this.#opts.retry.begin(req.registry, { signal: req.signal, onRetry: req.onRetry }) : undefined;
    const follow = req.followRedirects ?? idempotent;
    let url = new URL(req.url, origin);
    // An absolute URL (an upload Location) may point elsewhere: the http rule applies there too.
    if (url.origin !== origin) assertSchemeAllowed(url, this.#opts.insecureRegistries);
    let method: HttpMethod = req.method;
    let scopes = req.scopes;
    let hops = 0;
    let reauthenticated = false;

    for (;;) {
      const toRegistry = url.origin === origin;
      const headers: Record<string, string> = { 'user-agent': this.#opts.userAgent, ...req.headers };
      // Only the registry's own origin gets our Authorization header: a redirect to object
      // storage (another host) must not carry it.
      if (toRegistry) {
        const auth = await this.#authorization(req.registry, scopes, req.signal);
        if (auth) headers.authorization = auth;
      }
      let res: RegistryResponse;
      try {
        const r = await (await this.#dispatcher(url)).request({
          origin: url.origin,
          path: url.pathname + url.search,
          method,
          headers,
          body: openBody(method === req.method ? req.body : undefined),
          signal: req.signal,
          headersTimeout: this.#opts.headersTimeoutMs,
          bodyTimeout: this.#opts.bodyTimeoutMs,
        });
        res = { status: r.statusCode, headers: r.headers, body: r.body, url };
      } catch (err) {
        if (req.signal?.aborted) throw abortReason(req.signal, err);
        const failure = networkError(method, url, err, req.registry);
        if (!retry) throw failure;
        await retry.failed(failure);
        continue;
      }

      if (res.status === 401 && toRegistry) {
        const challenges = parseWwwAuthenticate(res.headers['www-authenticate']);
        const bearer = challenges.find((c) => c.scheme === 'bearer' && c.params.realm);
        const basic = challenges.find((c) => c.scheme === 'basic');
        const cred = await this.#opts.credentials.get(req.registry, req.signal);
        if (!reauthenticated && (bearer || (basic && cred))) {
          await dumpBody(res.body);
          reauthenticated = true;
          if (bearer) {
            this.#schemes.set(req.registry, { scheme: 'bearer', realm: bearer.params.realm!, service: bearer.params.service });
            // The registry may ask for more than we guessed (a mount needs pull on the source).
            const asked = bearer.params.scope?.split(' ').filter(Boolean) ?? [];
            scopes = mergeScopes(scopes, asked);
            // A token we sent was refused: do not reuse it.
            this.#tokens.delete(tokenCacheKey(req.registry, scopes));
          } else {
            this.#schemes.set(req.registry, { scheme: 'basic' });
          }
          continue;
        }
        const text = await readErrorText(res.body);
        throw this.unauthorized({ method, url, status: 401, body: text, registry: req.registry }, cred);
      }

      if (retry && RETRYABLE_STATUSES.has(res.status)) {
        // The error is built now (its body read) so that giving up reports what the registry said.
        await retry.failed(await this.fail(res, method, { registry: req.registry }), res.headers['retry-after']);
        continue;
      }

      if (follow && REDIRECT_STATUSES.has(res.status)) {
        const location = headerValue(res.headers, 'location');
        await dumpBody(res.body);
        if (!location) {
          throw new RegistryError('REGISTRY_ERROR', `${method} ${redactUrl(url)}: HTTP ${res.status} without a Location header`, { status: res.status });
        }
        if (++hops > MAX_REDIRECTS) {
          throw new RegistryError('REGISTRY_ERROR', `${req.method} ${redactUrl(new URL(req.url, origin))}: more than ${MAX_REDIRECTS} redirects`, { status: res.status });
        }
        const next = new URL(location, url);
        assertSchemeAllowed(next, this.#opts.insecureRegistries);
        if (res.status === 303 && method !== 'HEAD') method = 'GET';
        url = next;
        continue;
      }
      return res;
    }
  }

  /** Reads (bounded) the body of an unexpected response and turns it into a RegistryError. */
  async fail(res: RegistryResponse, method: string, extra: Omit<StatusErrorContext, 'method' | 'url' | 'status' | 'body'> = {}): Promise<RegistryError> {
    const body = method === 'HEAD' ? '' : await readErrorText(res.body);
    if (method === 'HEAD') await dumpBody(res.body);
    return errorFromStatus({ ...extra, method, url: res.url, status: res.status, body });
  }

  unauthorized(ctx: StatusErrorContext & { registry: string }, cred: Credential | undefined): RegistryError {
    const err = errorFromStatus({ ...ctx, hint: unauthorizedHint(ctx.registry, cred !== undefined) });
    return err;
  }

  async #authorization(registry: string, scopes: string[], signal?: AbortSignal): Promise<string | undefined> {
    const scheme = this.#schemes.get(registry);
    if (!scheme) return undefined;
    if (scheme.scheme === 'basic') {
      const cred = await this.#opts.credentials.get(registry, signal);
      return cred ? basicHeader(cred) : undefined;
    }
    const token = await this.#tokens.getOrFetch(tokenCacheKey(registry, scopes), () => this.#fetchToken(registry, scheme, scopes, signal));
    return `Bearer ${token}`;
  }

  /** Distribution token spec: GET <realm>?service=…&scope=… with Basic credentials if we have them. */
  async #fetchToken(registry: string, scheme: { realm: string; service: string | undefined }, scopes: string[], signal?: AbortSignal): Promise<CachedToken> {
    let url: URL;
    try {
      url = new URL(scheme.realm);
    } catch (err) {
      throw new RegistryError('UNAUTHORIZED', `registry ${registry} named an invalid token realm ${JSON.stringify(redactUrl(scheme.realm))}`, { cause: err });
    }
    assertSchemeAllowed(url, this.#opts.insecureRegistries);
    if (scheme.service) url.searchParams.set('service', scheme.service);
    for (const s of scopes) url.searchParams.append('scope', s);
    const cred = await this.#opts.credentials.get(registry, signal);
    const headers: Record<string, string> = { 'user-agent': this.#opts.userAgent, accept: 'application/json' };
    // The realm is the auth server the registry designates (auth.docker.io for Docker Hub), so it
    // gets this registry's credentials — but never in clear text over a non-loopback network.
    if (cred && (url.protocol === 'https:' || allowsPlainHttp(url.host, this.#opts.insecureRegistries))) headers.authorization = basicHeader(cred);

    const retry = this.#opts.retry.begin(registry, { signal });
    for (;;) {
      let status: number;
      let resHeaders: Record<string, string | string[] | undefined>;
      let body: ResponseBody;
      try {
        const r = await (await this.#dispatcher(url)).request({
          origin: url.origin,
          path: url.pathname + url.search,
          method: 'GET',
          headers,
          signal,
          headersTimeout: this.#opts.headersTimeoutMs,
          bodyTimeout: this.#opts.bodyTimeoutMs,
        });
        status = r.statusCode;
        resHeaders = r.headers;
        body = r.body;
      } catch (err) {
        if (signal?.aborted) throw abortReason(signal, err);
        await retry.failed(networkError('GET', url, err, registry));
        continue;
      }
      if (RETRYABLE_STATUSES.has(status)) {
        await retry.failed(errorFromStatus({ method: 'GET', url, status, body: await readErrorText(body), registry }), resHeaders['retry-after']);
        continue;
      }
      if (status === 401 || status === 403) {
        const text = await readErrorText(body);
        throw errorFromStatus({ method: 'GET', url, status: 401, body: text, registry, hint: unauthorizedHint(registry, cred !== undefined) });
      }
      if (status !== 200) {
        const text = await readErrorText(body);
        throw errorFromStatus({ method: 'GET', url, status, body: text, registry });
      }
      const bytes = await readBounded(body, MAX_TOKEN_RESPONSE);
      let json: { token?: unknown; access_token?: unknown; expires_in?: unknown };
      try {
        json = JSON.parse(bytes?.toString('utf8') ?? '') as typeof json;
      } catch (err) {
        throw new RegistryError('UNAUTHORIZED', `GET ${redactUrl(url)}: token response is not JSON`, { cause: err });
      }
      const token = typeof json.token === 'string' && json.token ? json.token : typeof json.access_token === 'string' ? json.access_token : '';
      if (!token) throw new RegistryError('UNAUTHORIZED', `GET ${redactUrl(url)}: token response has no token`);
      const expiresIn = typeof json.expires_in === 'number' ? json.expires_in : undefined;
      return { token, expiresAt: tokenExpiry((this.#opts.now ?? Date.now)(), expiresIn) };
    }
  }
}

function openBody(body: RequestBody | undefined): Buffer | Readable | undefined {
  if (body === undefined) return undefined;
  return Buffer.isBuffer(body) ? body : body();
}

function basicHeader(cred: Credential): string {
  return `Basic ${Buffer.from(`${cred.username}:${cred.password}`, 'utf8').toString('base64')}`;
}

function errCode(err: unknown): string {
  for (let e: unknown = err, d = 0; e && d < 4; d++) {
    const c = (e as { code?: unknown }).code;
    if (typeof c === 'string') return c;
    e = (e as { cause?: unknown }).cause;
  }
  return (err as Error)?.message ?? String(err);
}

/** OpenSSL's and Node's codes for a TLS certificate that could not be verified. */
const UNTRUSTED_CERTIFICATE = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_UNTRUSTED',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_SIGNATURE_FAILURE',
  'CERT_REVOKED',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

function networkError(method: string, url: URL, err: unknown, registry: string): RegistryError {
  const code = errCode(err);
  if (UNTRUSTED_CERTIFICATE.has(code)) {
    return new RegistryError('REGISTRY_UNAVAILABLE', `${method} ${redactUrl(url)}: its TLS certificate is not trusted (${code}: ${(err as Error).message})`, {
      cause: err,
      hint: `a certificate signed by a private CA is trusted once the CA's PEM file is named in NODE_EXTRA_CA_CERTS (or ${EXTRA_CA_ENV}); an expired certificate, or one for another name, is the server's to replace`,
      details: { method, url: redactUrl(url) },
    });
  }
  return new RegistryError('REGISTRY_UNAVAILABLE', `${method} ${redactUrl(url)}: connection failed (${code})`, {
    cause: err,
    temporary: isTransientNetworkFailure(err),
    hint: `check that registry ${registry} is running and reachable`,
    details: { method, url: redactUrl(url) },
  });
}

function unauthorizedHint(registry: string, hadCredentials: boolean): string {
  if (hadCredentials) {
    return `the credentials for ${registry} were refused; check the user name and password (from ${AUTH_ENV} or a registry auth file: \`hostpull login ${registry}\` again)`;
  }
  return (
    `no credentials for ${registry}: log in with \`hostpull login ${registry}\` (a podman, skopeo or docker login works too), ` +
    `or set ${AUTH_ENV}=${registry}=USER:PASSWORD (comma-separated for several registries)`
  );
}

/**
 * Why a request that its signal cut short ended: the signal's reason (an interrupt's "interrupted
 * by SIGINT", a daemon's DAEMON_STOPPING), as fetch() rejects, not the HTTP client's generic
 * "The operation was aborted"; that error when the reason is no Error.
 */
function abortReason(signal: AbortSignal, err: unknown): unknown {
  return signal.reason instanceof Error ? signal.reason : err;
}
