import { readFileSync, realpathSync } from 'node:fs';
import { Agent, request as httpRequest, type IncomingMessage, type RequestOptions } from 'node:http';
import { resolve as resolvePath } from 'node:path';
import { errorFromJson, errorText, HostpullError, isHostpullError, type ErrorJson } from '../errors.js';
import type { GcReport } from '../gc/index.js';
import { formatReference, type ImageReference } from '../oci/index.js';
import type { PullResult } from '../pull/index.js';
import type { HostApi, HostGcOptions, HostPullOptions, RemovedImage } from './host-api.js';
import type { HostStats, ImageSummary } from './queries.js';
import type { PullStreamLine } from './wire.js';

export interface DaemonHealth {
  ok: boolean;
  pid: number;
  root: string;
  version: string | null;
  activePulls: number;
  /** Requests in flight of any kind (absent from daemons before it was added). */
  inFlight?: number;
  stopping: boolean;
}

export interface DaemonClientOptions {
  socketPath: string;
  /**
   * Wait this long for the headers of a query's answer (health, images, stats, metrics): work
   * that reads the store and is done in milliseconds. Default 30 s. A pull, a GC and a removal of
   * images are waited for as long as they take (see {@link UNBOUNDED}).
   */
  timeoutMs?: number;
  /** The daemon's pid (from /v1/health), so that a broken connection can say whether it died. */
  pid?: number;
}

interface DaemonRequest {
  method: 'GET' | 'POST' | 'DELETE';
  path: string;
  body?: string;
  /** 0: wait for the answer's headers as long as it takes (a pull's stream). */
  headersTimeoutMs: number;
  signal?: AbortSignal | undefined;
}

/**
 * The headers timeout of an exchange whose work has no bound we could name: a GC's duration grows
 * with the store, and a removal of images waits for the store's write lock (up to its busy
 * timeout, more under contention) like any writer. A timeout there only made the CLI report
 * DAEMON_GONE while the daemon finished the work. Ctrl-C (the caller's signal) still stops the wait.
 */
const UNBOUNDED = 0;

/**
 * {@link HostApi} over the daemon's unix socket: HTTP/1.1 on one keep-alive connection, with
 * node:http, which Node has compiled in. undici's Client did the same after ~25 ms of module
 * loading, on every CLI command a daemon serves (the daemon's answer to `images` takes ~2 ms).
 * Errors come back as the HostpullError the daemon raised.
 */
class DaemonClient implements HostApi {
  readonly mode = 'daemon' as const;
  readonly socketPath: string;
  readonly #agent = new Agent({ keepAlive: true, maxSockets: 1 });
  readonly #timeoutMs: number;
  #pid: number | undefined;

  constructor(options: DaemonClientOptions) {
    this.socketPath = options.socketPath;
    this.#timeoutMs = options.timeoutMs ?? 30_000;
    this.#pid = options.pid;
  }

  async health(signal?: AbortSignal): Promise<DaemonHealth> {
    const health = await this.#json<DaemonHealth>('GET', '/v1/health', undefined, signal);
    this.#pid ??= health.pid;
    return health;
  }

  images(): Promise<ImageSummary[]> {
    return this.#json('GET', '/v1/images');
  }

  stats(): Promise<HostStats> {
    return this.#json('GET', '/v1/stats');
  }

  gc(options: HostGcOptions = {}): Promise<GcReport> {
    const body: { maxStoreSize?: number; dryRun?: boolean; graceMs?: number } = {};
    if (options.graceMs !== undefined) body.graceMs = options.graceMs;
    if (options.maxStoreSize !== undefined) body.maxStoreSize = options.maxStoreSize;
    if (options.dryRun !== undefined) body.dryRun = options.dryRun;
    return this.#json('POST', '/v1/gc', body, options.signal, UNBOUNDED);
  }

  removeImages(references: readonly string[]): Promise<RemovedImage[]> {
    return this.#json('DELETE', '/v1/images', { references }, undefined, UNBOUNDED);
  }

  metrics(): Promise<string> {
    return this.#guard('GET /metrics', undefined, async () => {
      const res = await this.#request({ method: 'GET', path: '/metrics', headersTimeoutMs: this.#timeoutMs });
      const text = await readText(res);
      if (res.statusCode !== 200) throw new HostpullError('DAEMON_ERROR', `GET /metrics answered ${res.statusCode}`);
      return text;
    });
  }

  /** Pulls through the daemon; progress events arrive as the daemon emits them. */
  pull(ref: ImageReference, options: HostPullOptions = {}): Promise<PullResult> {
    return this.#guard('the pull', options.signal, () => this.#pull(ref, options));
  }

  async #pull(ref: ImageReference, options: HostPullOptions): Promise<PullResult> {
    const body: Record<string, unknown> = { reference: formatReference(ref) };
    if (options.concurrency !== undefined) body.concurrency = options.concurrency;
    if (options.unpack !== undefined) body.unpack = options.unpack;
    if (options.keepBlobs !== undefined) body.keepBlobs = options.keepBlobs;
    // No body timeout: a big layer unpacked from a resumed file sends no event for a while.
    const res = await this.#request({ method: 'POST', path: '/v1/pull', body: JSON.stringify(body), headersTimeoutMs: UNBOUNDED, signal: options.signal });
    if (res.statusCode !== 200) throw await errorFrom(res.statusCode ?? 0, res, 'POST /v1/pull');
    let buffered = '';
    let final: PullResult | undefined;
    const handle = (line: string) => {
      if (line.trim() === '') return;
      const msg = JSON.parse(line) as PullStreamLine;
      if (msg.type === 'result') final = msg.result;
      else if (msg.type === 'error') throw errorFromJson(msg.error, 'DAEMON_ERROR');
      else options.onEvent?.(msg);
    };
    res.setEncoding('utf8');
    for await (const chunk of res) {
      buffered += chunk as string;
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        handle(line);
      }
    }
    handle(buffered);
    if (!final) {
      throw new HostpullError('DAEMON_GONE', `the daemon on ${this.socketPath} ended the pull without a result`, {
        hint: 'it may have stopped or crashed; pull again (downloads resume), and see `journalctl -u hostpull`',
      });
    }
    return final;
  }

  async close(): Promise<void> {
    // Every exchange has ended when a command closes: nothing in flight is cut.
    this.#agent.destroy();
  }

  #json<T>(method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown, signal?: AbortSignal, headersTimeoutMs = this.#timeoutMs): Promise<T> {
    return this.#guard(`${method} ${path}`, signal, async () => {
      const res = await this.#request({ method, path, ...(body !== undefined ? { body: JSON.stringify(body) } : {}), headersTimeoutMs, signal });
      if (res.statusCode !== 200) throw await errorFrom(res.statusCode ?? 0, res, `${method} ${path}`);
      return JSON.parse(await readText(res)) as T;
    });
  }

  /** Sends one request; resolves with the answer once its headers are in (its body still to read). */
  #request(req: DaemonRequest): Promise<IncomingMessage> {
    return new Promise((resolve, reject) => {
      const headers: Record<string, string | number> = {};
      if (req.body !== undefined) {
        headers['content-type'] = 'application/json';
        headers['content-length'] = Buffer.byteLength(req.body);
      }
      // The host is for the Host header only; the socket decides where we connect. A servername
      // of our own keeps node:http's agent from deriving one from the host for TLS, which it does
      // on plain sockets too: its first call compiles the IPv6 pattern, ~3 ms of every command
      // that asks the daemon (a 6.0 against 9.0 ms first request, measured on a bare socket).
      const options: RequestOptions & { servername: string } = {
        socketPath: this.socketPath,
        agent: this.#agent,
        method: req.method,
        path: req.path,
        host: 'hostpull',
        servername: 'hostpull',
        headers,
        ...(req.signal ? { signal: req.signal } : {}),
      };
      const out = httpRequest(options);
      const timer =
        req.headersTimeoutMs > 0
          ? setTimeout(() => out.destroy(Object.assign(new Error(`no answer within ${req.headersTimeoutMs} ms`), { code: 'HEADERS_TIMEOUT' })), req.headersTimeoutMs)
          : undefined;
      out.once('response', (res) => {
        clearTimeout(timer);
        resolve(res);
      });
      out.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      out.end(req.body);
    });
  }

  /**
   * Runs one exchange with the daemon; a connection that breaks under it (ECONNRESET, "socket
   * hang up") becomes DAEMON_GONE saying whether the daemon died or only closed the connection,
   * and what to do. Our own errors pass through, and an abort as its reason.
   */
  async #guard<T>(what: string, signal: AbortSignal | undefined, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      // node:http ends an aborted exchange with its own AbortError: the caller's reason (an
      // ABORTED naming the signal, from cli/interrupt.ts) is what says why.
      if (signal?.aborted) throw signal.reason ?? err;
      if (isHostpullError(err)) throw err;
      throw await daemonGone(this.socketPath, this.#pid, what, err);
    }
  }
}

/** How long a daemon whose connection broke gets to show up as dead (a kill -9 closes sockets first, then exits). */
const DEATH_WAIT_MS = 1_000;

async function daemonGone(socketPath: string, pid: number | undefined, what: string, err: unknown): Promise<HostpullError> {
  const why = (err as { code?: unknown }).code ?? errorText(err);
  const who = pid === undefined ? `the daemon on ${socketPath}` : `the daemon on ${socketPath} (pid ${pid})`;
  const dead = pid !== undefined && (await exitsWithin(pid, DEATH_WAIT_MS));
  if (dead) {
    return new HostpullError('DAEMON_GONE', `${who} exited during ${what} (${String(why)})`, {
      cause: err,
      hint: 'it was stopped or crashed: see its log (journalctl -u hostpull); then run the command again — through the daemon once it is back, or in-process with --no-daemon; a pull resumes what was already downloaded',
      details: { socketPath, pid },
    });
  }
  return new HostpullError('DAEMON_GONE', `${who} closed the connection during ${what} (${String(why)})`, {
    cause: err,
    hint: 'it may be stopping or restarting (systemctl status hostpull); run the command again, or in-process with --no-daemon',
    details: { socketPath, ...(pid !== undefined ? { pid } : {}) },
  });
}

/** True once `pid` no longer runs (gone, or a zombie waiting to be reaped) within `ms`. */
async function exitsWithin(pid: number, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  for (;;) {
    let state: string | undefined;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    } catch {
      return true;
    }
    if (state === 'Z' || state === 'X') return true;
    if (Date.now() >= deadline) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** An answer's whole body as text (the daemon's answers other than a pull's stream are small JSON). */
async function readText(res: IncomingMessage): Promise<string> {
  res.setEncoding('utf8');
  let text = '';
  for await (const chunk of res) text += chunk as string;
  return text;
}

async function errorFrom(status: number, res: IncomingMessage, what: string): Promise<HostpullError> {
  const text = await readText(res).catch(() => '');
  try {
    const parsed = JSON.parse(text) as { error?: ErrorJson };
    if (parsed.error?.code) return errorFromJson(parsed.error, 'DAEMON_ERROR');
  } catch {
    // not our error JSON: fall through
  }
  return new HostpullError('DAEMON_ERROR', `${what} answered ${status}: ${text.slice(0, 200)}`);
}

function canonical(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return resolvePath(path);
  }
}

export interface ConnectDaemonOptions {
  socketPath: string;
  /** The store root the caller works on: a daemon serving another root is not used. */
  root: string;
  /** How long the health probe may take. Default 2 s. Later requests have their own timeouts (DaemonClientOptions). */
  timeoutMs?: number;
}

/**
 * A client for the daemon on `socketPath` if one answers /v1/health and serves `root`;
 * undefined otherwise (no socket, nobody listening, a daemon of another root or stopping), in
 * which case the caller works in-process on the store — safe beside a running daemon.
 */
export async function connectDaemon(options: ConnectDaemonOptions): Promise<DaemonClient | undefined> {
  // The probe's short timeout is the probe's alone (its signal): the client it returns keeps its
  // own, as a GC answered after 2 s was reported as a daemon gone when the probe's was reused.
  const client = new DaemonClient({ socketPath: options.socketPath });
  try {
    const health = await client.health(AbortSignal.timeout(options.timeoutMs ?? 2_000));
    // The pid is kept (health() remembers it): a connection that breaks later can say whether the daemon died.
    if (health.ok && !health.stopping && canonical(health.root) === canonical(options.root)) return client;
  } catch {
    // ENOENT, ECONNREFUSED, EACCES, timeout: no usable daemon here.
  }
  await client.close().catch(() => undefined);
  return undefined;
}
