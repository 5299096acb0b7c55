/**
 * A real CNCF distribution registry (Debian's docker-registry 2.8) for integration tests: one
 * process per call on a free 127.0.0.1 port with its own temp storage, whose access log is parsed
 * so tests can count requests and the exact response bytes the registry sent.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll } from 'vitest';
import { HostpullError } from '../../src/errors.js';
import { freePort } from './free-port.js';

export interface AccessEntry {
  method: string;
  /** Request URI as logged, query included (`/v2/x/blobs/uploads/…?digest=…`). */
  path: string;
  status: number;
  /**
   * Response body bytes sent. The registry counts what its handler wrote; for HEAD that is the
   * would-be body, which never goes on the wire, so HEAD entries are 0.
   */
  bytes: number;
  /** The access log does not record request headers, so this stays undefined for the registry. */
  range?: string;
}

export interface TestRegistry {
  /** `http://127.0.0.1:PORT` */
  url: string;
  /** `127.0.0.1:PORT` */
  host: string;
  /** Temp dir holding config.yml, data/ (storage) and htpasswd; removed by stop(). */
  dir: string;
  pid: number;
  /** Every access-log entry so far (after a flush, see mark()). */
  accessLog(): Promise<AccessEntry[]>;
  /** Waits until the log has caught up with finished requests, returns the entry count as a bookmark. */
  mark(): Promise<number>;
  /** Entries logged after `mark` (same flush as mark()). */
  since(mark: number): Promise<AccessEntry[]>;
  /** The registry's own stdout/stderr so far (for failure messages). */
  output(): string;
  /** SIGSTOP: the process stops answering (connections hang mid-response), as a stalled registry does. */
  pause(): void;
  /** SIGCONT after pause(). */
  resume(): void;
  stop(): Promise<void>;
}

export interface RegistryOptions {
  /** Require HTTP Basic auth with this one user (auth.htpasswd, bcrypt via `htpasswd -Bbn`). */
  htpasswd?: { user: string; password: string };
  /** Require Bearer tokens (auth.token) signed by a key whose certificate is in rootCertBundle. */
  tokenAuth?: { realm: string; service: string; issuer: string; rootCertBundle: string };
  /** How long to wait for GET /v2/ to answer. Default 15 000 ms. */
  startTimeoutMs?: number;
}

const REGISTRY_BIN = '/usr/bin/docker-registry';
/** Query of the sentinel request used to flush the log; its entries are never reported. */
const SENTINEL = 'hostpull-log-flush';
// 127.0.0.1 - - [23/Nov/2026:19:14:52 +0000] "GET /v2/ HTTP/1.1" 200 2 "" "curl/7.88.1"
const ACCESS_RE = /^\S+ \S+ \S+ \[[^\]]*\] "(\S+) (\S+) [^"]*" (\d{3}) (\d+|-)/;
const OUTPUT_CAP = 256 * 1024;

function yamlString(s: string): string {
  return JSON.stringify(s); // a JSON string is a valid YAML double-quoted scalar
}

function registryConfig(dir: string, port: number, opts: RegistryOptions): string {
  const lines = [
    'version: 0.1',
    'log:',
    '  level: warn',
    '  formatter: text',
    '  accesslog:',
    '    disabled: false',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${yamlString(join(dir, 'data'))}`,
    '  delete:',
    '    enabled: true',
    '  cache:',
    '    blobdescriptor: inmemory',
    '  maintenance:',
    '    uploadpurging:',
    '      enabled: false',
    'http:',
    `  addr: 127.0.0.1:${port}`,
    // A fixed secret silences the "generated random secret" warning; uploads stay in one process.
    `  secret: ${yamlString(randomBytes(16).toString('hex'))}`,
    'health:',
    '  storagedriver:',
    '    enabled: false',
  ];
  if (opts.htpasswd) {
    lines.push('auth:', '  htpasswd:', '    realm: hostpull-test', `    path: ${yamlString(join(dir, 'htpasswd'))}`);
  } else if (opts.tokenAuth) {
    const t = opts.tokenAuth;
    lines.push(
      'auth:',
      '  token:',
      `    realm: ${yamlString(t.realm)}`,
      `    service: ${yamlString(t.service)}`,
      `    issuer: ${yamlString(t.issuer)}`,
      `    rootcertbundle: ${yamlString(t.rootCertBundle)}`,
    );
  }
  return `${lines.join('\n')}\n`;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** One running registry process with its log parser. */
class RegistryProcess implements TestRegistry {
  readonly url: string;
  readonly host: string;
  readonly dir: string;
  readonly pid: number;
  #child: ChildProcess;
  #entries: AccessEntry[] = [];
  #output = '';
  #partial = { out: '', err: '' };
  #lastLineAt = 0;
  #seenSentinels = new Set<string>();
  #exited: Promise<void>;
  #hasExited = false;
  #stopped = false;

  constructor(child: ChildProcess, port: number, dir: string) {
    this.#child = child;
    this.pid = child.pid!;
    this.host = `127.0.0.1:${port}`;
    this.url = `http://${this.host}`;
    this.dir = dir;
    this.#exited = new Promise((resolve) => child.once('exit', () => resolve()));
    void this.#exited.then(() => (this.#hasExited = true));
    child.stdout!.setEncoding('utf8').on('data', (s: string) => this.#onData('out', s));
    child.stderr!.setEncoding('utf8').on('data', (s: string) => this.#onData('err', s));
  }

  get exited(): boolean {
    return this.#hasExited;
  }

  waitExit(): Promise<void> {
    return this.#exited;
  }

  #onData(stream: 'out' | 'err', chunk: string): void {
    if (this.#output.length < OUTPUT_CAP) this.#output += chunk;
    const text = this.#partial[stream] + chunk;
    const lines = text.split('\n');
    this.#partial[stream] = lines.pop() ?? '';
    for (const line of lines) this.#onLine(line);
  }

  #onLine(line: string): void {
    const m = ACCESS_RE.exec(line);
    if (!m) return;
    this.#lastLineAt = Date.now();
    const [, method, path, status, bytes] = m as unknown as [string, string, string, string, string];
    const q = path.indexOf(`?${SENTINEL}=`);
    if (q >= 0) {
      this.#seenSentinels.add(path.slice(q + SENTINEL.length + 2));
      return;
    }
    this.#entries.push({
      method,
      path,
      status: Number(status),
      bytes: method === 'HEAD' || bytes === '-' ? 0 : Number(bytes),
    });
  }

  /**
   * The registry writes an access-log line after its handler returns, which can be a little after
   * the client has read the whole response. A sentinel request issued now is logged after every
   * request that had already completed (it needs a full round trip first); then wait for a short
   * quiet spell to also catch any line still racing it.
   */
  async #flush(): Promise<void> {
    if (this.#hasExited) return;
    const id = randomBytes(8).toString('hex');
    try {
      const res = await fetch(`${this.url}/v2/?${SENTINEL}=${id}`, { signal: AbortSignal.timeout(5000) });
      await res.arrayBuffer();
    } catch {
      return; // registry gone: what we have is all there will be
    }
    const deadline = Date.now() + 3000;
    while (!this.#seenSentinels.has(id) && Date.now() < deadline && !this.#hasExited) await sleep(2);
    this.#seenSentinels.delete(id);
    const quietMs = 15;
    while (Date.now() - this.#lastLineAt < quietMs && Date.now() < deadline) await sleep(quietMs);
  }

  async accessLog(): Promise<AccessEntry[]> {
    await this.#flush();
    return [...this.#entries];
  }

  async mark(): Promise<number> {
    await this.#flush();
    return this.#entries.length;
  }

  async since(mark: number): Promise<AccessEntry[]> {
    await this.#flush();
    return this.#entries.slice(mark);
  }

  output(): string {
    return this.#output;
  }

  pause(): void {
    if (!this.#hasExited) this.#child.kill('SIGSTOP');
  }

  resume(): void {
    if (!this.#hasExited) this.#child.kill('SIGCONT');
  }

  /** Kills the process (SIGTERM, SIGKILL after 5 s) without removing the dir. */
  async kill(): Promise<void> {
    if (this.#hasExited) return;
    this.#child.kill('SIGCONT'); // a paused process would not act on SIGTERM
    this.#child.kill('SIGTERM');
    const timer = setTimeout(() => {
      if (!this.#hasExited) this.#child.kill('SIGKILL');
    }, 5000);
    await this.#exited;
    clearTimeout(timer);
  }

  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    await this.kill();
    await rm(this.dir, { recursive: true, force: true });
  }
}

async function waitReady(reg: RegistryProcess, timeoutMs: number): Promise<'ready' | 'exited' | 'timeout'> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (reg.exited) return 'exited';
    try {
      const res = await fetch(`${reg.url}/v2/`, { signal: AbortSignal.timeout(1000) });
      await res.arrayBuffer();
      if (res.status === 200 || res.status === 401) return 'ready';
    } catch {
      // not listening yet
    }
    await sleep(30);
  }
  return 'timeout';
}

/**
 * Starts a registry. The port is chosen by binding port 0 and releasing it, so another process may
 * grab it first: on "address already in use" we retry with a new port (up to 5 times).
 */
export async function startRegistry(opts: RegistryOptions = {}): Promise<TestRegistry> {
  const dir = await mkdtemp(join(tmpdir(), 'hostpull-registry-'));
  try {
    await mkdir(join(dir, 'data'));
    if (opts.htpasswd) {
      const r = spawnSync('htpasswd', ['-Bbn', opts.htpasswd.user, opts.htpasswd.password], { encoding: 'utf8' });
      if (r.status !== 0) {
        throw new HostpullError('TEST_REGISTRY_START', `htpasswd failed: ${r.stderr || r.error?.message}`);
      }
      await writeFile(join(dir, 'htpasswd'), r.stdout.trim() + '\n', { mode: 0o600 });
    }
    let lastOutput = '';
    for (let attempt = 0; attempt < 5; attempt++) {
      const port = await freePort();
      const config = join(dir, 'config.yml');
      await writeFile(config, registryConfig(dir, port, opts));
      const child = spawn(REGISTRY_BIN, ['serve', config], { stdio: ['ignore', 'pipe', 'pipe'] });
      const spawnError = new Promise<Error>((resolve) => child.once('error', resolve));
      if (child.pid === undefined) {
        throw new HostpullError('TEST_REGISTRY_START', `cannot spawn ${REGISTRY_BIN}: ${(await spawnError).message}`);
      }
      const reg = new RegistryProcess(child, port, dir);
      const state = await waitReady(reg, opts.startTimeoutMs ?? 15_000);
      if (state === 'ready') return reg;
      await reg.kill();
      lastOutput = reg.output();
      if (!/address already in use/i.test(lastOutput)) {
        throw new HostpullError('TEST_REGISTRY_START', `registry on port ${port} did not start (${state}):\n${lastOutput}`);
      }
    }
    throw new HostpullError('TEST_REGISTRY_START', `no free port after 5 attempts:\n${lastOutput}`);
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

/** GETs of blobs by digest that succeeded (2xx, or 3xx redirects to storage). */
export function blobRequests(entries: AccessEntry[]): AccessEntry[] {
  return entries.filter(
    (e) => e.method === 'GET' && /^\/v2\/.+\/blobs\/sha(256|512):[0-9a-f]+(\?|$)/.test(e.path) && e.status >= 200 && e.status < 400,
  );
}

/**
 * vitest helper: starts a registry in beforeAll, stops it in afterAll; call the returned getter
 * inside tests (it throws when called before beforeAll ran).
 */
export function useRegistry(opts: RegistryOptions = {}): () => TestRegistry {
  let reg: TestRegistry | undefined;
  beforeAll(async () => {
    reg = await startRegistry(opts);
  });
  afterAll(async () => {
    await reg?.stop();
  });
  return () => {
    if (!reg) throw new HostpullError('TEST_REGISTRY_NOT_STARTED', 'useRegistry(): registry not started yet (use it inside tests or hooks)');
    return reg;
  };
}
