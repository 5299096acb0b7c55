/**
 * `hostpull daemon --snapshotter-socket … --snapshotter-lazy` with a real containerd 1.6 driven
 * like a kubelet (CRI PullImage over gRPC) and through `ctr`, over packages published seekable by
 * `hostpull publish` (span gzip + TOC referrer) behind a real `hostpull serve` and docker-registry:
 * a CRI pull commits the package layers over lazy FUSE views without fetching them, containers
 * read them through FUSE, a kill -9 leaves no stale mount, the layers complete in the background,
 * and new mounts use the unpacked directories once no snapshot holds the views.
 */
import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HostStats } from '../../../src/daemon/index.js';
import { listMountsUnder } from '../../../src/rootfs/index.js';
import { runCli } from '../../helpers/cli.js';
import { CRI_NAMESPACE, shLingering, startContainerd, type TestContainerd } from '../../helpers/containerd.js';
import type { AccessEntry } from '../../helpers/registry.js';
import { startTestDaemon, type TestDaemon } from '../daemon/daemon-process.js';
import { killDaemonAndLazyHelper, startLazyEnv, type LazyEnv } from '../lazy/lazy-env.js';

let env: LazyEnv;
let daemon: TestDaemon | undefined;
let containerd: TestContainerd | undefined;
let root: string;
let daemonOpts: (delay: string) => Parameters<typeof startTestDaemon>[0];
const ns = { namespace: CRI_NAMESPACE };

beforeAll(async () => {
  env = await startLazyEnv({ 'TOOLA1.0': 4 * 1024 * 1024, 'TOOLB1.0': 1024 * 1024, 'TOOLC1.0': 2 * 1024 * 1024 });
  root = join(env.work, 'store');
  const snapshotterSocket = join(env.work, 'snapshotter.sock');
  daemonOpts = (delay) => ({ root, socket: join(env.work, 'hostpull.sock'), args: ['--snapshotter-socket', snapshotterSocket, '--snapshotter-lazy', '--lazy-background-delay', delay] });
  // No background completion in the first part: the layers stay lazy until the daemon is restarted.
  daemon = await startTestDaemon(daemonOpts('10m'));
  containerd = await startContainerd({ dir: join(env.work, 'containerd'), snapshotterSocket, registries: [env.serverHost, env.registry.host] });
}, 240_000);

afterAll(async () => {
  await containerd?.stop();
  await daemon?.stop();
  await env?.close();
});

const image = () => `${env.serverHost}/hostpull:TOOLA1.0-TOOLB1.0`;

/** Bytes of successful GETs of one blob in registry access-log entries, and whether all were partial (206). */
function blobBytes(entries: AccessEntry[], digest: string): { bytes: number; gets: number; ranged: boolean } {
  const gets = entries.filter((e) => e.method === 'GET' && e.path.endsWith(`/blobs/${digest}`) && e.status < 400);
  return { bytes: gets.reduce((n, e) => n + e.bytes, 0), gets: gets.length, ranged: gets.every((e) => e.status === 206) };
}

async function stats(): Promise<HostStats> {
  const r = await runCli(['--root', root, 'stats', '--json', '--socket', daemon!.socket]);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as HostStats;
}

async function arrivals(): Promise<Map<string, string>> {
  return new Map((await stats()).layerArrivals.map((a) => [a.blobDigest, a.arrival]));
}

/** The top committed snapshot of the pulled image: the one no other committed snapshot has as parent. */
async function topChain(): Promise<string> {
  const ls = await containerd!.ctr(['snapshots', '--snapshotter', 'hostpull', 'ls'], ns);
  expect(ls.code, ls.stderr).toBe(0);
  const rows = ls.stdout.trim().split('\n').slice(1).map((l) => l.trim().split(/\s+/));
  const committed = rows.filter((r) => r.at(-1) === 'Committed');
  const parents = new Set(committed.map((r) => (r.length === 3 ? r[1] : '')));
  const tops = committed.map((r) => r[0]!).filter((k) => !parents.has(k));
  expect(tops).toHaveLength(1);
  return tops[0]!;
}

/** The lowerdirs containerd would mount for a new container over the image (a probe snapshot, removed again). */
async function lowerdirsOfNewSnapshot(key: string): Promise<string[]> {
  const top = await topChain();
  expect((await containerd!.ctr(['snapshots', '--snapshotter', 'hostpull', 'prepare', key, top], ns)).code).toBe(0);
  const m = await containerd!.ctr(['snapshots', '--snapshotter', 'hostpull', 'mounts', '/tmp/unused', key], ns);
  expect(m.code, m.stderr).toBe(0);
  expect((await containerd!.ctr(['snapshots', '--snapshotter', 'hostpull', 'rm', key], ns)).code).toBe(0);
  const lower = /lowerdir=([^,\s]+)/.exec(m.stdout)?.[1];
  expect(lower, m.stdout).toBeDefined();
  return lower!.split(':');
}

/** containerd's log lines about snapshots (its garbage collection's removals among them), for a failure's message. */
const snapshotLines = (log: string) =>
  log
    .split('\n')
    .filter((l) => /snapshot/i.test(l))
    .slice(-40)
    .join('\n');

const fuseMounts = () => listMountsUnder(join(root, 'lazy')).filter((m) => m.fsType.startsWith('fuse'));

/** GC of everything it may take: no grace period, a zero budget. */
async function gcAll(): Promise<{ layersRemoved: number }> {
  const r = await runCli(['--root', root, 'gc', '--min-age', '0s', '--max-store-size', '0', '--json', '--socket', daemon!.socket]);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as { layersRemoved: number };
}

/** Polls `check` until it holds; on timeout, `detail` (the state worth seeing) goes into the error. */
async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 120_000, detail?: () => string | Promise<string>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${detail ? `\n${await detail()}` : ''}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

describe('containerd snapshotter with --snapshotter-lazy', () => {
  it('a CRI pull returns before the package layers are fetched; ctr run reads them through their lazy FUSE views', async () => {
    const toolA = env.published.get('TOOLA1.0')!;
    const toolB = env.published.get('TOOLB1.0')!;
    const mark = await env.registry.mark();
    expect(await containerd!.cri.pullImage(image())).toMatch(/^sha256:/);
    const pulled = await env.registry.since(mark);
    // Ready with none of a package layer's bytes: only its TOC was read.
    for (const p of [toolA, toolB]) {
      expect(blobBytes(pulled, p.layerDigest).bytes).toBe(0);
      expect(blobBytes(pulled, p.tocDigest).gets).toBe(1);
    }
    expect(fuseMounts().map((m) => m.mountPoint), daemon!.log().slice(-3000)).toHaveLength(2);
    const laid = await readdir(join(root, 'layers'));
    expect(laid.filter((n) => /^\d+$/.test(n))).toHaveLength(1); // the base layer (no TOC): whole
    const early = await arrivals();
    expect(early.get(toolA.layerDigest)).toBe('lazy');
    expect(early.get(toolB.layerDigest)).toBe('lazy');
    expect([...early.values()].sort()).toEqual(['lazy', 'lazy', 'whole']); // the base (no TOC) came whole
    // The snapshotter's own counts say the same: served lazily, not fetched (with 0 bytes).
    const sn = (await stats()).snapshotter;
    expect(sn.totals).toMatchObject({ lazy: 2, fetched: 1, applied: 0 });
    for (const p of [toolA, toolB]) expect(sn.layers.find((l) => l.blobDigest === p.layerDigest)).toMatchObject({ lazy: 1, fetched: 0, bytesFetched: 0 });
    const text = await runCli(['--root', root, 'stats', '--socket', daemon!.socket]);
    expect(text.stdout).toMatch(/layers fetched by hostpull 1 \(.*\), served lazily 2, reused 0, applied by containerd 0/);
    const metrics = (await daemon!.get('/metrics')).body;
    expect(metrics).toContain('hostpull_snapshotter_layers_total{outcome="lazy"} 2');
    expect(metrics).toContain('hostpull_snapshotter_layers_total{outcome="fetched"} 1');

    // The container's overlay has the FUSE dirs as lowerdirs; it reads a small part of the layers.
    const lower = await lowerdirsOfNewSnapshot('probe-lazy');
    expect(lower.filter((d) => d.includes('/lazy/mnt/'))).toHaveLength(2);
    const r = await containerd!.ctr(['run', '--rm', '--snapshotter', 'hostpull', image(), 'lazy-run-1', ...shLingering('toola; toolb')], ns);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('toola says hi\ntoola small file\ntoolb says hi\ntoolb small file\n');
    const read = blobBytes(await env.registry.since(mark), toolA.layerDigest);
    expect(read.gets).toBeGreaterThan(0);
    expect(read.ranged).toBe(true);
    expect(read.bytes).toBeLessThan(toolA.size * 0.2);
    // Still lazy (no completion in this daemon), and the views stay mounted for the snapshots standing for them.
    expect(fuseMounts().map((m) => m.mountPoint), daemon!.log().slice(-3000)).toHaveLength(2);
    // GC with nothing young and a zero budget: it may take the TOC blobs (the restart below fetches them again), never a layer a snapshot stands for.
    expect((await gcAll()).layersRemoved).toBe(0);
  }, 180_000);

  it('kill -9 of the daemon and its helper: the restart leaves no stale mount, the layers complete, and the views go once the last container using them is removed', async () => {
    const helperDir = await killDaemonAndLazyHelper(daemon!, root);
    expect(fuseMounts().length).toBeGreaterThan(0); // stale: nobody serves them

    // The restart completes the layers in the background, after a delay long enough to start a container over the views first.
    daemon = await startTestDaemon(daemonOpts('15s'));
    expect(fuseMounts().every((m) => !m.mountPoint.includes(`/${helperDir}/`))).toBe(true);
    // containerd redials the restarted daemon after its gRPC backoff (about a second), as a kubelet would retry.
    await waitFor('containerd to reach the snapshotter again', async () => (await containerd!.ctr(['snapshots', '--snapshotter', 'hostpull', 'ls'], ns)).code === 0, 30_000);
    const started = await containerd!.ctr(['run', '-d', '--snapshotter', 'hostpull', image(), 'lazy-long-1', '/bin/sh', '-c', 'toola; sleep 300'], ns);
    expect(started.code, started.stderr).toBe(0);
    expect(fuseMounts().map((m) => m.mountPoint), daemon!.log().slice(-3000)).toHaveLength(2); // the views made again, held by the container's snapshot

    const toolA = env.published.get('TOOLA1.0')!;
    const toolB = env.published.get('TOOLB1.0')!;
    await waitFor('the lazy layers to complete', async () => {
      const a = await arrivals();
      return a.get(toolA.layerDigest) === 'lazy-completed' && a.get(toolB.layerDigest) === 'lazy-completed';
    });
    expect((await gcAll()).layersRemoved).toBe(0);
    expect((await readdir(join(root, 'layers'))).filter((n) => /^\d+$/.test(n))).toHaveLength(3);
    // Complete: a new container's mounts name the layer directories; the running one still holds the views.
    const lower = await lowerdirsOfNewSnapshot('probe-complete');
    expect(lower.filter((d) => d.includes('/lazy/mnt/'))).toEqual([]);
    expect(lower.filter((d) => !d.startsWith(join(root, 'layers')))).toEqual([]);
    expect(fuseMounts().map((m) => m.mountPoint), daemon!.log().slice(-3000)).toHaveLength(2);
    const fresh = await containerd!.ctr(['run', '--rm', '--snapshotter', 'hostpull', image(), 'lazy-run-2', ...shLingering('toolb; wc -c < /opt/toola/lib/big.bin')], ns);
    expect(fresh.code, fresh.stderr).toBe(0);
    expect(fresh.stdout).toBe(`toolb says hi\ntoolb small file\n${4 * 1024 * 1024}\n`);

    // containerd removes the container's snapshot after unmounting it: the views are released.
    // Two waits below, so that a slow run says whose step was slow: containerd's garbage collection
    // of the container's snapshot (its key is the container id), then our release of the views.
    const snapshots = async () => (await containerd!.ctr(['snapshots', '--snapshotter', 'hostpull', 'ls'], ns)).stdout;
    expect(await snapshots()).toMatch(/^lazy-long-1\s/m);
    expect((await containerd!.ctr(['task', 'kill', '-s', 'SIGKILL', 'lazy-long-1'], ns)).code).toBe(0);
    await waitFor('the task to stop', async () => (await containerd!.ctr(['task', 'delete', 'lazy-long-1'], ns)).code === 0, 30_000);
    expect((await containerd!.ctr(['container', 'rm', 'lazy-long-1'], ns)).code).toBe(0);
    await waitFor("containerd to remove lazy-long-1's snapshot", async () => !/^lazy-long-1\s/m.test(await snapshots()), 60_000);
    // A view is unmounted first and its span cache cleared after, so both are awaited: a check
    // made the moment the last mount goes can still see the last cache.
    // containerd's metadata forgets the snapshot at once; its backend Remove (what releases the
    // views) comes with the collection that deletion starts (the helper's deletion_threshold).
    const spanCaches = async () => readdir(join(root, 'lazy', 'spans')).catch(() => [] as string[]);
    await waitFor(
      'the lazy views to be unmounted and their span caches cleared',
      async () => fuseMounts().length === 0 && (await spanCaches()).length === 0,
      60_000,
      async () =>
        `FUSE mounts: ${JSON.stringify(fuseMounts())}\nspan caches: ${JSON.stringify(await spanCaches())}\nsnapshots:\n${await snapshots()}\n` +
        `containerd's snapshot lines:\n${snapshotLines(containerd!.log())}\ndaemon log:\n${daemon!.log().slice(-3000)}`,
    );
    // Every Remove containerd's collections sent us succeeded: a failing one stops a collection, leaving the rest for later.
    expect(snapshotLines(containerd!.log())).not.toMatch(/garbage collection failed|failed to remove snapshot|snapshot removal failed/);
  }, 240_000);

  it('a CRI pull of an image another node started lazily fetches the spans that start read, before any container asks', async () => {
    const toolC = env.published.get('TOOLC1.0')!;
    // A first node (`hostpull run --lazy`) learns what starting the composite reads, and offers it to the server.
    const first = await runCli(['--root', join(env.work, 'first-node'), '--server', env.serverHost, 'run', '--lazy', 'TOOLC1.0', '--', 'toolc']);
    expect(first.code, first.stderr).toBe(0);
    const mark = await env.registry.mark();
    await containerd!.cri.pullImage(`${env.serverHost}/hostpull:TOOLC1.0`);
    // This daemon completes layers 15 s after mounting them: what comes before is the prefetch.
    await waitFor('the learned spans to be fetched', async () => blobBytes(await env.registry.since(mark), toolC.layerDigest).gets > 0, 10_000);
    const early = blobBytes(await env.registry.since(mark), toolC.layerDigest);
    expect(early.ranged).toBe(true);
    expect(early.bytes).toBeLessThan(toolC.size * 0.2);
    expect(daemon!.log()).toMatch(/"prefetch":[1-9]\d*,"msg":"snapshotter: fetching the spans the first start of this image read"/);
    const r = await containerd!.ctr(['run', '--rm', '--snapshotter', 'hostpull', `${env.serverHost}/hostpull:TOOLC1.0`, 'lazy-run-c', ...shLingering('toolc')], ns);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('toolc says hi\ntoolc small file\n');
  }, 120_000);

  it('--snapshotter-lazy without --snapshotter-socket is a usage error, before anything is created', async () => {
    const nowhere = join(env.work, 'no-snapshotter');
    const r = await runCli(['--root', nowhere, 'daemon', '--socket', `${nowhere}.sock`, '--snapshotter-lazy'], { timeoutMs: 30_000 });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--snapshotter-lazy needs --snapshotter-socket/);
    expect(existsSync(nowhere)).toBe(false);
  });
});
