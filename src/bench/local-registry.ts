import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { HostpullError } from '../errors.js';

/** One access-log line of the registry. */
export interface RegistryAccess {
  method: string;
  path: string;
  status: number;
  /** Response body bytes; HEAD lines are counted as 0 (the logged size never goes on the wire). */
  bytes: number;
}

export interface LocalRegistryOptions {
  /** Directory for config.yml and data/; the caller owns (and removes) it. */
  dir: string;
  /** docker-registry binary. Default /usr/bin/docker-registry (Debian's CNCF distribution 2.8). */
  binary?: string;
  /** How long to wait for `GET /v2/`. Default 15 000 ms. */
  startTimeoutMs?: number;
  signal?: AbortSignal;
}

// 127.0.0.1 - - [23/Nov/2026:19:14:52 +0000] "GET /v2/ HTTP/1.1" 200 2 "" "curl/7.88.1"
const ACCESS_LINE = /^\S+ \S+ \S+ \[[^\]]*\] "(\S+) (\S+) [^"]*" (\d{3}) (\d+|-)/;
/** Query marking the log-flush request; its lines are never reported. */
const FLUSH_PARAM = 'hostpull-bench-flush';

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Binds port 0 on loopback and releases it; the registry may lose a race for it, so start() retries. */
async function pickPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (srv.address() as AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

function config(dir: string, port: number): string {
  return [
    'version: 0.1',
    'log:',
    '  level: warn',
    '  accesslog:',
    '    disabled: false',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${JSON.stringify(join(dir, 'data'))}`,
    '  maintenance:',
    '    uploadpurging:',
    '      enabled: false',
    'http:',
    `  addr: 127.0.0.1:${port}`,
    `  secret: ${JSON.stringify(randomBytes(16).toString('hex'))}`,
    'health:',
    '  storagedriver:',
    '    enabled: false',
    '',
  ].join('\n');
}

/**
 * A CNCF distribution registry run by the bench, on a free 127.0.0.1 port. Its Apache-style
 * access log records the size of every response, so the bytes it served can be counted exactly
 * without a proxy in between.
 */
export class LocalRegistry {
  readonly url: string;
  readonly host: string;
  readonly pid: number;
  readonly #child: ChildProcess;
  readonly #entries: RegistryAccess[] = [];
  readonly #flushed = new Set<string>();
  #partial = '';
  #output = '';
  #lastLineAt = 0;
  #exited = false;
  readonly #exit: Promise<void>;

  private constructor(child: ChildProcess, port: number) {
    this.#child = child;
    this.pid = child.pid!;
    this.host = `127.0.0.1:${port}`;
    this.url = `http://${this.host}`;
    this.#exit = new Promise((r) => child.once('exit', () => r()));
    void this.#exit.then(() => (this.#exited = true));
    // A late spawn error (the pid existed) must not crash the bench; it shows in the output.
    child.on('error', (err) => (this.#output += `\n${err.message}`));
    // The registry logs access lines on stdout and its own messages on stderr; read both, the
    // line format tells them apart.
    for (const s of [child.stdout!, child.stderr!]) s.setEncoding('utf8').on('data', (d: string) => this.#onData(d));
  }

  static async start(options: LocalRegistryOptions): Promise<LocalRegistry> {
    const binary = options.binary ?? '/usr/bin/docker-registry';
    await mkdir(join(options.dir, 'data'), { recursive: true });
    let last = '';
    for (let attempt = 0; attempt < 5; attempt++) {
      const port = await pickPort();
      const file = join(options.dir, 'config.yml');
      await writeFile(file, config(options.dir, port));
      const child = spawn(binary, ['serve', file], { stdio: ['ignore', 'pipe', 'pipe'] });
      if (child.pid === undefined) {
        const err = await new Promise<Error>((r) => child.once('error', r));
        throw new HostpullError('BENCH_REGISTRY', `cannot start ${binary}: ${err.message}`, { hint: 'install docker-registry (apt-get install docker-registry)' });
      }
      const reg = new LocalRegistry(child, port);
      if (await reg.#waitReady(options.startTimeoutMs ?? 15_000, options.signal)) return reg;
      await reg.stop();
      last = reg.#output;
      if (!/address already in use/i.test(last)) break;
    }
    throw new HostpullError('BENCH_REGISTRY', `docker-registry did not start:\n${last.slice(-2000)}`);
  }

  async #waitReady(timeoutMs: number, signal?: AbortSignal): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline && !this.#exited) {
      signal?.throwIfAborted();
      try {
        const res = await fetch(`${this.url}/v2/`, { signal: AbortSignal.timeout(1000) });
        await res.arrayBuffer();
        if (res.status === 200) return true;
      } catch {
        // not listening yet
      }
      await sleep(30);
    }
    return false;
  }

  #onData(chunk: string): void {
    if (this.#output.length < 64 * 1024) this.#output += chunk;
    const lines = (this.#partial + chunk).split('\n');
    this.#partial = lines.pop() ?? '';
    for (const line of lines) {
      const m = ACCESS_LINE.exec(line);
      if (!m) continue;
      this.#lastLineAt = Date.now();
      const [, method, path, status, bytes] = m as unknown as [string, string, string, string, string];
      const q = path.indexOf(`?${FLUSH_PARAM}=`);
      if (q >= 0) {
        this.#flushed.add(path.slice(q + FLUSH_PARAM.length + 2));
        continue;
      }
      this.#entries.push({ method, path, status: Number(status), bytes: method === 'HEAD' || bytes === '-' ? 0 : Number(bytes) });
    }
  }

  /**
   * The registry logs a request after its handler returns, which may be just after the client
   * read the last byte. A marker request sent now is logged after every request that had already
   * finished, so waiting for its line (plus a short quiet spell) makes the log complete.
   */
  async #flush(): Promise<void> {
    if (this.#exited) return;
    const id = randomBytes(8).toString('hex');
    try {
      const res = await fetch(`${this.url}/v2/?${FLUSH_PARAM}=${id}`, { signal: AbortSignal.timeout(5000) });
      await res.arrayBuffer();
    } catch {
      return;
    }
    const deadline = Date.now() + 3000;
    while (!this.#flushed.has(id) && Date.now() < deadline && !this.#exited) await sleep(2);
    this.#flushed.delete(id);
    while (Date.now() - this.#lastLineAt < 15 && Date.now() < deadline) await sleep(15);
  }

  /** Bookmark: the number of log entries once every finished request is logged. */
  async mark(): Promise<number> {
    await this.#flush();
    return this.#entries.length;
  }

  /** Entries logged after a bookmark. */
  async since(mark: number): Promise<RegistryAccess[]> {
    await this.#flush();
    return this.#entries.slice(mark);
  }

  /** SIGTERM, then SIGKILL after 5 s; leaves the directory to its owner. */
  async stop(): Promise<void> {
    if (this.#exited) return;
    this.#child.kill('SIGTERM');
    const t = setTimeout(() => this.#child.kill('SIGKILL'), 5000);
    await this.#exit;
    clearTimeout(t);
  }
}

const BLOB_PATH = /^\/v2\/.+\/blobs\/(sha256:[0-9a-f]{64})(?:\?|$)/;

/** Bytes of successful GETs (2xx/3xx): what left the registry. */
export function servedBytes(entries: readonly RegistryAccess[]): number {
  return entries.filter((e) => e.method === 'GET' && e.status >= 200 && e.status < 400).reduce((n, e) => n + e.bytes, 0);
}

/** Bytes served per blob digest, for GETs of blobs only. */
export function servedBlobBytes(entries: readonly RegistryAccess[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const e of entries) {
    if (e.method !== 'GET' || e.status < 200 || e.status >= 400) continue;
    const m = BLOB_PATH.exec(e.path);
    if (m) out.set(m[1]!, (out.get(m[1]!) ?? 0) + e.bytes);
  }
  return out;
}
