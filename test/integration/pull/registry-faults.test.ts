/**
 * Registry faults between `hostpull pull` and a real registry, injected by the fault proxy:
 * a registry that goes silent mid-blob (resumed after the idle timeout), one that resets every
 * connection for 5 s (waited out with backoff), one that never recovers (fails within the retry
 * budget, naming registry and budget), cuts (each resumed where it broke) and 429/503 with
 * Retry-After (honoured). Short timeouts and budgets keep the suite quick; the defaults only
 * differ in size.
 */
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { useBigImageBehindProxy } from '../../helpers/big-image.js';
import { runCli } from '../../helpers/cli.js';
import type { BuiltLayer } from '../../helpers/fixtures.js';
import type { ProxyRequest, TestProxy } from '../../helpers/proxy.js';
import { useTempDir } from '../../helpers/tmp.js';
import { recordTrial } from '../../helpers/trials.js';
import { useTestDaemons } from '../daemon/daemon-process.js';

const image = useBigImageBehindProxy('FLT1.0', { seed: 31 });
const tempDir = useTempDir('fault');
const daemonOn = useTestDaemons();
let big: BuiltLayer;
let proxy: TestProxy;
let isBig: (r: { method: string; path: string }) => boolean;

beforeAll(() => {
  ({ big, proxy, isBig } = image());
});

async function freshRoot(name: string): Promise<string> {
  return join(await tempDir(name), 'root');
}

/** Pulls FLT1.0 through the proxy in-process with the given flags; returns the result, the time it took and the big blob's requests. */
async function pull(root: string, flags: string[]): Promise<{ code: number | null; stdout: string; stderr: string; ms: number; bigRequests: ProxyRequest[] }> {
  const before = proxy.requests.length;
  const t0 = Date.now();
  const r = await runCli(['--root', root, '--server', proxy.host, ...flags, 'pull', 'FLT1.0', '--json', '--no-daemon'], { timeoutMs: 120_000 });
  return { ...r, ms: Date.now() - t0, bigRequests: proxy.requests.slice(before).filter(isBig) };
}

/**
 * The warning the registry client logs when a registry starts failing an operation
 * (registry/retry.ts): as a CLI words it on stderr (text), and in a daemon's log (json).
 */
const RETRY_WARNING = /^hostpull: warning: registry \S+ failed( on [^;]+)?; retrying for up to .* registry=\S+ err=/;
const RETRY_WARNING_JSON = /"level":40,.*"msg":"registry [^"]+ failed( on [^";]+)?; retrying for up to /;

/** The line a daemon's client prints for the daemon's retry (cli/pull-and-print.ts). */
const RETRY_LINE = /^hostpull: registry 127\.0\.0\.1:\d+ failed on blob sha256:[0-9a-f]{64} \(.+\); retrying for up to /;

/** stderr without the lines that report a retry (expected here). */
function unexpected(stderr: string): string[] {
  return stderr.split('\n').filter((line) => line !== '' && !RETRY_WARNING.test(line) && !RETRY_LINE.test(line));
}

/** Bytes of the big blob the proxy sent (in 200/206 answers) beyond one copy of it. */
function fetchedTwice(requests: ProxyRequest[]): number {
  return requests.filter((r) => r.status === 200 || r.status === 206).reduce((n, r) => n + r.bytes, 0) - big.size;
}

function rangeStart(r: ProxyRequest): number {
  return Number(/^bytes=(\d+)-$/.exec(r.range ?? 'bytes=0-')![1]);
}

describe('a registry that goes silent mid-blob', () => {
  it('is given up on after the idle timeout, and the pull completes by resuming with Range', async () => {
    const stallAt = 3 * 1024 * 1024;
    let first = true;
    proxy.setFault((req) => (isBig(req) && first ? ((first = false), { stallAfterBytes: stallAt }) : undefined));
    const r = await pull(await freshRoot('fault-stall'), ['--registry-idle-timeout', '1s', '--registry-retry-budget', '20s']);
    proxy.clearFaults();
    expect(unexpected(r.stderr)).toEqual([]);
    // In-process, the registry client's warning says it, and nothing says it twice.
    expect(r.stderr).toMatch(RETRY_WARNING);
    expect(r.stderr.split('\n').filter((line) => RETRY_LINE.test(line))).toEqual([]);
    expect(r.code).toBe(0);
    const [stalled, resumed] = r.bigRequests;
    expect(r.bigRequests).toHaveLength(2);
    expect(stalled!.bytes).toBe(stallAt);
    // Our idle timeout closed the silent connection (an HTTP client's own default waits minutes).
    const silentMs = stalled!.closedAt! - stalled!.stalledAt!;
    expect(silentMs).toBeGreaterThanOrEqual(900);
    expect(silentMs).toBeLessThan(10_000);
    expect(rangeStart(resumed!)).toBe(stallAt);
    expect(fetchedTwice(r.bigRequests)).toBe(0);
    const layer = JSON.parse(r.stdout).layers.find((l: { digest: string }) => l.digest === big.digest);
    expect(layer.fetchedBytes).toBe(big.size);
    recordTrial('stall', { recovered: true, silentMs, pullMs: r.ms, bytesFetchedTwice: fetchedTwice(r.bigRequests) });
  });

  it('through the daemon too, with the idle timeout the daemon was started with', async () => {
    const daemon = await daemonOn(await tempDir('fault-stall-daemon'), proxy.host, [], { HOSTPULL_REGISTRY_IDLE_TIMEOUT: '1s' });
    {
      const stallAt = 2 * 1024 * 1024;
      let first = true;
      proxy.setFault((req) => (isBig(req) && first ? ((first = false), { stallAfterBytes: stallAt }) : undefined));
      const before = proxy.requests.length;
      const r = await runCli(['--root', daemon.root, '--server', proxy.host, 'pull', 'FLT1.0', '--json', '--socket', daemon.socket], { timeoutMs: 120_000 });
      proxy.clearFaults();
      expect(unexpected(r.stderr)).toEqual([]);
      expect(r.code).toBe(0);
      const requests = proxy.requests.slice(before).filter(isBig);
      expect(requests.map(rangeStart)).toEqual([0, stallAt]);
      expect(requests[0]!.closedAt! - requests[0]!.stalledAt!).toBeLessThan(10_000);
      expect(daemon.log()).toMatch(RETRY_WARNING_JSON);
      // The client says it too, once, as a line of text: the daemon's log is not on this terminal.
      expect(r.stderr.split('\n').filter((line) => RETRY_LINE.test(line))).toHaveLength(1);
      recordTrial('stall', { recovered: true, via: 'daemon', bytesFetchedTwice: fetchedTwice(requests) });
      expect(await daemon.stop()).toEqual({ code: 0, signal: null });
    }
  });
});

describe('a registry that resets every connection', () => {
  it('for 5 s: the pull waits it out with backoff and resumes where the transfer broke', async () => {
    const cutAt = 2 * 1024 * 1024;
    let outageUntil = 0;
    let resetsInOutage = 0;
    proxy.setFault((req) => {
      if (outageUntil === 0 && isBig(req)) {
        outageUntil = Date.now() + 5000;
        return { cutAfterBytes: cutAt };
      }
      if (Date.now() < outageUntil) {
        resetsInOutage++;
        return 'reset';
      }
      return undefined;
    });
    const r = await pull(await freshRoot('fault-outage'), ['--registry-retry-budget', '30s']);
    proxy.clearFaults();
    expect(unexpected(r.stderr)).toEqual([]);
    expect(r.code).toBe(0);
    // Backoff: a handful of attempts in 5 s (full jitter from 200 ms doubling), not a tight loop.
    expect(resetsInOutage).toBeGreaterThanOrEqual(2);
    expect(resetsInOutage).toBeLessThan(40);
    expect(r.ms).toBeGreaterThanOrEqual(5000);
    const served = r.bigRequests.filter((q) => q.status === 200 || q.status === 206);
    expect(served.map(rangeStart)).toEqual([0, cutAt]);
    expect(fetchedTwice(r.bigRequests)).toBe(0);
    recordTrial('outage', { recovered: true, outageMs: 5000, attemptsInOutage: resetsInOutage, pullMs: r.ms, bytesFetchedTwice: fetchedTwice(r.bigRequests) });
  });

  it('for good: the pull fails within the retry budget, naming the registry and the budget', async () => {
    let broken = false;
    proxy.setFault((req) => {
      if (isBig(req)) broken = true;
      return broken ? 'reset' : undefined;
    });
    const root = await freshRoot('fault-down');
    const before = proxy.requests.length;
    const r = await pull(root, ['--registry-retry-budget', '3s']);
    const resets = proxy.requests.slice(before).filter((q) => q.status === 0).length;
    proxy.clearFaults();
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(proxy.host);
    // Told when the registry started failing, how long it would be waited for: once per
    // download it failed (the base and the package layer each have their budget), not per retry.
    const told = r.stderr.split('\n').filter((line) => RETRY_WARNING.test(line));
    expect(told.length).toBeGreaterThanOrEqual(1);
    expect(told.length).toBeLessThanOrEqual(2);
    expect(resets).toBeGreaterThan(told.length + 2);
    for (const line of told) expect(line).toMatch(new RegExp(`^hostpull: warning: registry ${proxy.host} failed on blob sha256:[0-9a-f]{64}; retrying for up to 3\\.0s`));
    expect(r.stderr).toMatch(/^hostpull: .*retry budget of 3\.0s/m);
    expect(r.stderr).toMatch(/^hint: check that registry 127\.0\.0\.1:\d+ is running and reachable; a longer retry budget \(--registry-retry-budget/m);
    // Bounded: the budget plus start-up, never minutes.
    expect(r.ms).toBeGreaterThanOrEqual(3000);
    expect(r.ms).toBeLessThan(15_000);
    recordTrial('outage-permanent', { recovered: false, failedWithinBudget: r.ms < 15_000, failedAfterMs: r.ms, budgetMs: 3000 });
  });
});

describe('cuts and busy answers', () => {
  it('a transfer cut every 1.5 MB resumes each time where it broke, fetching nothing twice', async () => {
    const chunk = 1.5 * 1024 * 1024;
    proxy.setFault((req) => (isBig(req) ? { cutAfterBytes: chunk } : undefined));
    // A budget far shorter than the whole transfer: each resume made progress, so it never runs out.
    const r = await pull(await freshRoot('fault-cuts'), ['--registry-retry-budget', '2s']);
    proxy.clearFaults();
    expect(unexpected(r.stderr)).toEqual([]);
    expect(r.code).toBe(0);
    expect(r.bigRequests.map(rangeStart)).toEqual(Array.from({ length: Math.ceil(big.size / chunk) }, (_, i) => i * chunk));
    expect(fetchedTwice(r.bigRequests)).toBe(0);
    recordTrial('cut', { recovered: true, cuts: r.bigRequests.length - 1, bytesFetchedTwice: fetchedTwice(r.bigRequests) });
  });

  it('429 and 503 with Retry-After are waited out as asked', async () => {
    const answers: Array<{ status: number; retryAfter: string }> = [
      { status: 429, retryAfter: '1' },
      { status: 503, retryAfter: '1' },
    ];
    proxy.setFault((req) => (isBig(req) ? answers.shift() : undefined));
    const r = await pull(await freshRoot('fault-busy'), []);
    proxy.clearFaults();
    expect(unexpected(r.stderr)).toEqual([]);
    expect(r.code).toBe(0);
    expect(r.bigRequests.map((q) => q.status)).toEqual([429, 503, 200]);
    for (let i = 1; i < 3; i++) expect(r.bigRequests[i]!.at - r.bigRequests[i - 1]!.at).toBeGreaterThanOrEqual(950);
    recordTrial('busy', { recovered: true, bytesFetchedTwice: fetchedTwice(r.bigRequests) });
  });
});
