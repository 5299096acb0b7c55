/**
 * `hostpull daemon` against a real registry: CLIs pull through its socket (each blob fetched
 * once across concurrent clients), the output is the same through the daemon and in-process,
 * /metrics agrees with the registry's byte count, and a SIGTERM in the middle of a large pull
 * parks it so the next daemon resumes it with Range.
 */
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { CLI_ENTRY, runCli, spawnCli } from '../../helpers/cli.js';
import { buildLayer, packageFiles, pushFixtureSet, pushImage, type FixtureSet } from '../../helpers/fixtures.js';
import { startProxy } from '../../helpers/proxy.js';
import { blobRequests, startRegistry, type AccessEntry, type TestRegistry } from '../../helpers/registry.js';
import { mountsBelow, useTempDir } from '../../helpers/tmp.js';
import { daemonRequest, useTestDaemons } from './daemon-process.js';

let registry: TestRegistry;
let fixtures: FixtureSet;
const tempDir = useTempDir('daemon');
const daemonOn = useTestDaemons();

beforeAll(async () => {
  registry = await startRegistry();
  fixtures = await pushFixtureSet(registry.url);
});

afterAll(async () => {
  await registry?.stop();
});

/** Minimal Prometheus text parser: `name{labels} value` samples; HELP/TYPE lines checked for shape. */
function parsePrometheus(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    if (line.startsWith('#')) {
      expect(line).toMatch(/^# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* .+$/);
      continue;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*\})? (-?[0-9.e+-]+|NaN|\+Inf|-Inf)$/.exec(line);
    expect(m, `not a Prometheus sample line: ${line}`).not.toBeNull();
    samples.set(m![1]! + (m![2] ?? ''), Number(m![3]));
  }
  return samples;
}

/** Body bytes the registry sent for manifests and blobs (GETs; HEADs carry none). */
function servedContentBytes(entries: AccessEntry[]): number {
  return entries
    .filter((e) => e.method === 'GET' && e.status === 200 && /\/(manifests|blobs)\//.test(e.path))
    .reduce((n, e) => n + e.bytes, 0);
}

describe('pulls through the daemon', () => {
  it('two CLIs pulling overlapping tags at once fetch each blob once; /metrics agrees with the registry', async () => {
    const dir = await tempDir('daemon-pull');
    const daemon = await daemonOn(dir, registry.host);
    const mark = await registry.mark();
    const cli = (tag: string) =>
      runCli(['--root', daemon.root, '--server', registry.host, 'pull', tag, '--json', '--socket', daemon.socket], { timeoutMs: 120_000 });
    const [a, b] = await Promise.all([cli('JDK11.0-MVN3.8-GRD7.0'), cli('JDK17.0-MVN3.8-GRD7.0')]);
    for (const r of [a, b]) {
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
    }
    const entries = await registry.since(mark);
    const counts = new Map<string, number>();
    for (const e of blobRequests(entries)) {
      const digest = e.path.split('/blobs/')[1]!;
      counts.set(digest, (counts.get(digest) ?? 0) + 1);
    }
    const layers = [fixtures.base, fixtures.packages['JDK11.0']!, fixtures.packages['JDK17.0']!, fixtures.packages['MVN3.8']!, fixtures.packages['GRD7.0']!];
    for (const l of layers) expect(counts.get(l.digest), l.digest).toBe(1);
    expect([...counts.values()].every((n) => n === 1)).toBe(true);

    // Both went through the daemon: it logged them (after its answers went: the clients may be
    // done first), and its duration histogram counted them.
    await vi.waitFor(
      () => {
        expect(daemon.log()).toContain('JDK11.0-MVN3.8-GRD7.0');
        expect(daemon.log()).toContain('JDK17.0-MVN3.8-GRD7.0');
      },
      { timeout: 5000, interval: 50 },
    );
    {
      const metrics = parsePrometheus((await daemon.get('/metrics')).body);
      expect(metrics.get('hostpull_pull_duration_seconds_count{phase="total"}')).toBe(2);
      const fetched = JSON.parse(a.stdout).bytesFetched + JSON.parse(b.stdout).bytesFetched;
      expect(metrics.get('hostpull_bytes_fetched_total')).toBe(fetched);
      expect(metrics.get('hostpull_bytes_fetched_total')).toBe(servedContentBytes(entries));
      expect(metrics.get('hostpull_pulls_total{result="ok"}')).toBe(2);
      expect(metrics.get('hostpull_layer_misses_total')! + metrics.get('hostpull_layer_hits_total')!).toBe(8);
      expect(metrics.get('hostpull_active_mounts')).toBe(0);
      const stats = JSON.parse((await daemon.get('/v1/stats')).body);
      expect(metrics.get('hostpull_store_bytes{kind="blobs"}')).toBe(stats.store.blobBytes);
      expect(metrics.get('hostpull_store_bytes{kind="layers"}')).toBe(stats.store.unpackedBytes);
    }
  });

  it('images, stats and gc print the same through the daemon and in-process', async () => {
    const dir = await tempDir('daemon-same');
    const daemon = await daemonOn(dir, registry.host);
    const pulled = await runCli(['--root', daemon.root, '--server', registry.host, 'pull', 'JDK11.0-GRD7.0', '--socket', daemon.socket]);
    expect(pulled.code).toBe(0);
    expect(pulled.stdout).toMatch(/^pulled .*JDK11\.0-GRD7\.0 .* 3 layers, 0 cached, 3 fetched/);
    // Read-only verbs, so all of them can run at once.
    const verbs = [['images'], ['stats', '--json'], ['gc', '--dry-run', '--json']];
    const outputs = await Promise.all(
      verbs.flatMap((verb) => [runCli(['--root', daemon.root, '--log-level', 'debug', ...verb, '--socket', daemon.socket]), runCli(['--root', daemon.root, ...verb, '--no-daemon'])]),
    );
    for (let i = 0; i < verbs.length; i++) {
      const [via, local] = [outputs[2 * i]!, outputs[2 * i + 1]!];
      expect(via.code).toBe(0);
      expect(via.stderr).toMatch(/using the daemon/);
      expect(via.stdout).toBe(local.stdout);
    }
    // rmi through the daemon: an unknown name removes nothing (exit 1, the daemon's message), then the image goes.
    const unknown = await runCli(['--root', daemon.root, '--server', registry.host, 'rmi', 'JDK11.0-GRD7.0', 'NOPE1.0', '--socket', daemon.socket]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/not in the store: .*NOPE1\.0; nothing was removed/);
    const removed = await runCli(['--root', daemon.root, '--log-level', 'debug', '--server', registry.host, 'rmi', 'JDK11.0-GRD7.0', '--socket', daemon.socket]);
    expect(removed.stderr).toMatch(/using the daemon/);
    expect(removed.stdout).toMatch(/^removed .*\/hostpull:JDK11\.0-GRD7\.0 \(sha256:/);
    expect(JSON.parse((await runCli(['--root', daemon.root, 'images', '--json', '--no-daemon'])).stdout)).toEqual([]);
    // A daemon serving another root is not used: this pull works in-process on its own root.
    const other = await tempDir('daemon-other');
    const r = await runCli(['--root', join(other, 'root'), '--server', registry.host, 'pull', 'JDK11.0-GRD7.0', '--socket', daemon.socket, '--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse((await runCli(['--root', join(other, 'root'), 'stats', '--json', '--no-daemon'])).stdout).pulls).toBe(1);
  });

  it('layer blobs are dropped after unpacking unless the CLI or the daemon says --keep-blobs', async () => {
    const stored = async (d: { get(path: string): Promise<{ body: string }> }) => JSON.parse((await d.get('/v1/stats')).body).store.blobs as number;
    const plain = await daemonOn(await tempDir('daemon-drop'), registry.host);
    const p1 = await runCli(['--root', plain.root, '--server', registry.host, 'pull', 'JDK11.0-GRD7.0', '--socket', plain.socket]);
    expect(p1.code).toBe(0);
    expect(await stored(plain)).toBe(2); // manifest and config only
    const p2 = await runCli(['--root', plain.root, '--server', registry.host, 'pull', 'JDK17.0-MVN3.8-GRD7.0', '--keep-blobs', '--socket', plain.socket]);
    expect(p2.code).toBe(0);
    // The request asked to keep them: JDK17.0 and MVN3.8 (fetched now) stay, GRD7.0 was unpacked before.
    expect(await stored(plain)).toBe(2 + 2 + 2);

    const keeping = await daemonOn(await tempDir('daemon-keep'), registry.host, ['--keep-blobs']);
    const k = await runCli(['--root', keeping.root, '--server', registry.host, 'pull', 'JDK11.0-GRD7.0', '--socket', keeping.socket]);
    expect(k.code).toBe(0);
    expect(await stored(keeping)).toBe(3 + 2);
  });

  it('a CLI given --insecure-registry pulls in-process: the daemon keeps its own plain-http policy', async () => {
    const dir = await tempDir('daemon-insecure');
    const daemon = await daemonOn(dir, registry.host);
    const r = await runCli(['--root', daemon.root, '--server', registry.host, '--insecure-registry', registry.host, '--log-level', 'debug', 'pull', 'JDK11.0-GRD7.0', '--socket', daemon.socket]);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/--insecure-registry given: working in-process/);
    expect(r.stderr).not.toMatch(/using the daemon/);
    // Same store: the daemon sees the image, though it did not pull it.
    expect(JSON.parse((await daemon.get('/v1/images')).body).map((i: { reference: string }) => i.reference)).toEqual([`${registry.host}/hostpull:JDK11.0-GRD7.0`]);
  });

  it('a plain pull reaches the daemon without loading the full CLI, and prints what the full CLI prints', async () => {
    const dir = await tempDir('daemon-plain');
    const daemon = await daemonOn(dir, registry.host);
    // A HOSTPULL_* variable of this test run's own would send every line the long way.
    const unset = Object.fromEntries(Object.keys(process.env).flatMap((k) => (k.startsWith('HOSTPULL_') ? [[k, undefined]] : [])));
    const pull = (tag: string, extra: string[], env: Record<string, string> = {}, entry?: string) =>
      runCli(['--root', daemon.root, '--server', registry.host, 'pull', tag, '--socket', daemon.socket, ...extra], { env: { ...unset, ...env }, ...(entry ? { entry } : {}) });
    // NODE_DEBUG=module names every module loaded: the plain command line loads no commander, from
    // the startup snapshot as from main.js (which loads the rest module by module: node:http shows).
    const plain = await pull('JDK11.0-GRD7.0', ['--json'], { NODE_DEBUG: 'module' });
    expect(plain.code, plain.stderr).toBe(0);
    expect(plain.stderr).not.toMatch(/commander/);
    const plainFromMain = await pull('JDK11.0-GRD7.0', ['--json'], { NODE_DEBUG: 'module' }, CLI_ENTRY);
    expect(plainFromMain.code, plainFromMain.stderr).toBe(0);
    expect(plainFromMain.stderr).toMatch(/load built-in module node:http/);
    expect(plainFromMain.stderr).not.toMatch(/commander/);
    const full = await pull('JDK11.0-GRD7.0', ['--json', '--log-level', 'warn'], { NODE_DEBUG: 'module' });
    expect(full.stderr).toMatch(/commander/);
    // The same record either way (the second pull found everything at home).
    const [first, second] = [JSON.parse(plain.stdout), JSON.parse(full.stdout)];
    expect(first).toMatchObject({ reference: `${registry.host}/hostpull:JDK11.0-GRD7.0`, upToDate: false, layerMisses: 3 });
    expect(second).toMatchObject({ reference: first.reference, manifestDigest: first.manifestDigest, upToDate: true, layerHits: 3 });
    expect(Object.keys(first).sort()).toEqual(Object.keys(second).sort());
    // Its summary line, and the daemon's answer to a pull it cannot do, are the full CLI's.
    const summary = (s: string) => s.replace(/ in [0-9.]+ ?m?s:/, ' in T:');
    const [line, fullLine] = await Promise.all([pull('JDK11.0-GRD7.0', []), pull('JDK11.0-GRD7.0', ['--log-level', 'warn'])]);
    expect(line.code).toBe(0);
    expect(summary(line.stdout)).toBe(summary(fullLine.stdout));
    expect(line.stdout).toMatch(/^up to date .*JDK11\.0-GRD7\.0 .* 3 layers, 3 cached, 0 fetched/);
    const [unknown, fullUnknown] = await Promise.all([pull('NOPE2.0', []), pull('NOPE2.0', ['--log-level', 'warn'])]);
    expect(unknown.code).toBe(1);
    expect([unknown.code, unknown.stderr]).toEqual([fullUnknown.code, fullUnknown.stderr]);
    // A bad value is the full CLI's to refuse: usage error, exit 2, whatever the daemon.
    const bad = await pull('JDK11.0-GRD7.0', ['--concurrency', '0']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--concurrency/);
  });

  it('a socket whose daemon does not answer is asked once; the pull works in-process', async () => {
    const dir = await tempDir('daemon-hung');
    const socket = join(dir, 'hung.sock');
    let connections = 0;
    const hung = createServer(() => connections++);
    await new Promise<void>((res) => hung.listen(socket, res));
    try {
      const r = await runCli(['--root', join(dir, 'root'), '--server', registry.host, 'pull', 'JDK11.0-GRD7.0', '--json', '--socket', socket]);
      expect(r.code, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({ upToDate: false, layerMisses: 3 });
      // The plain pull's probe timed out; the full CLI that took over did not ask again.
      expect(connections).toBe(1);
    } finally {
      hung.close();
    }
  });

  it('a pull error through the daemon prints what it prints in-process, exit 1', async () => {
    const dir = await tempDir('daemon-err');
    const daemon = await daemonOn(dir, registry.host);
    const r = await runCli(['--root', daemon.root, '--server', registry.host, 'pull', 'NOPE1.0-JDK11.0', '--socket', daemon.socket]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/NOPE1\.0-JDK11\.0/);
    const local = await runCli(['--root', daemon.root, '--server', registry.host, 'pull', 'NOPE1.0-JDK11.0', '--no-daemon']);
    expect(local.code).toBe(1);
    expect(r.stderr).toBe(local.stderr);
  });
});

/** `runc run` on a bundle the daemon prepared, as an orchestrator would; stdout and exit code. */
function runcRun(bundle: string, stateRoot: string, id: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('runc', ['--root', stateRoot, 'run', '--bundle', bundle, id], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    child.once('error', reject);
    child.once('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('rootfs for a runtime', () => {
  it('POST /v1/rootfs mounts a runnable bundle that GC and a daemon restart leave alone; DELETE removes it', async () => {
    const dir = await tempDir('daemon-rootfs');
    let daemon = await daemonOn(dir, registry.host);
    const script = 'ls /opt; echo written > /tmp/note; cat /tmp/note';
    const created = await daemonRequest(daemon.socket, 'POST', '/v1/rootfs', { reference: 'JDK11.0-GRD7.0', args: ['/bin/sh', '-c', script], env: ['GREETING=hi'] });
    expect(created.status, created.body).toBe(201);
    const rootfs = JSON.parse(created.body) as { id: string; rootfs: string; bundle: string; reference: string; manifestDigest: string };
    expect(rootfs.reference).toBe(`${registry.host}/hostpull:JDK11.0-GRD7.0`);
    expect(rootfs.manifestDigest).toMatch(/^sha256:[a-f0-9]{64}$/);
    expect((await readdir(join(rootfs.rootfs, 'opt'))).sort()).toEqual(['grd-7.0', 'jdk-11.0']);
    const config = JSON.parse(await readFile(join(rootfs.bundle, 'config.json'), 'utf8'));
    expect(config.process.args).toEqual(['/bin/sh', '-c', script]);
    expect(config.process.env).toContain('GREETING=hi');

    const ran = await runcRun(rootfs.bundle, join(dir, 'runc'), `hp-test-${rootfs.id}`);
    expect(ran.stderr).toBe('');
    expect(ran.code).toBe(0);
    expect(ran.stdout).toBe('grd-7.0\njdk-11.0\nwritten\n');
    expect(parsePrometheus((await daemon.get('/metrics')).body).get('hostpull_active_mounts')).toBe(1);
    // `hostpull ps` on the same store shows it as prepared for someone else, with what it runs.
    const ps = await runCli(['--root', daemon.root, 'ps', '--json']);
    expect(ps.code).toBe(0);
    expect(JSON.parse(ps.stdout)).toEqual([
      expect.objectContaining({ id: rootfs.id, reference: rootfs.reference, manifestDigest: rootfs.manifestDigest, command: ['/bin/sh', '-c', script], state: 'prepared', ownerPid: null }),
    ]);

    // The first rootfs pulled the image (one pull); another of the same stored image is no pull.
    const pullsBefore = JSON.parse((await daemon.get('/v1/stats')).body);
    expect(pullsBefore).toMatchObject({ pulls: 1, upToDatePulls: 0 });
    const second = await daemonRequest(daemon.socket, 'POST', '/v1/rootfs', { reference: 'JDK11.0-GRD7.0' });
    expect(second.status).toBe(201);
    expect(JSON.parse((await daemon.get('/v1/stats')).body)).toMatchObject({ pulls: 1, upToDatePulls: 0, bytesReused: pullsBefore.bytesReused });
    expect((await daemonRequest(daemon.socket, 'DELETE', '/v1/rootfs', { id: JSON.parse(second.body).id })).status).toBe(204);

    // A 1-byte budget would take every unused layer: these three are held by the rootfs.
    const gc = await daemonRequest(daemon.socket, 'POST', '/v1/gc', { maxStoreSize: 1, graceMs: 0 });
    expect(gc.status).toBe(200);
    expect(JSON.parse((await daemon.get('/v1/stats')).body).store.layers).toBe(3);

    // Prepared for someone else, it outlives the daemon that prepared it.
    expect(await daemon.stop()).toEqual({ code: 0, signal: null });
    daemon = await daemonOn(dir, registry.host);
    expect(await mountsBelow(join(daemon.root, 'containers'))).toEqual([rootfs.rootfs]);
    expect(await readFile(join(rootfs.rootfs, 'tmp', 'note'), 'utf8')).toBe('written\n');

    const removed = await daemonRequest(daemon.socket, 'DELETE', '/v1/rootfs', { id: rootfs.id });
    expect(removed.status).toBe(204);
    expect(await mountsBelow(daemon.root)).toEqual([]);
    expect(parsePrometheus((await daemon.get('/metrics')).body).get('hostpull_active_mounts')).toBe(0);
    // Idempotent: a client that lost the first answer asks again and hears the same.
    const again = await daemonRequest(daemon.socket, 'DELETE', '/v1/rootfs', { id: rootfs.id });
    expect(again.status).toBe(204);
  });

  it('refuses a bad id, an unknown code name and a malformed body with 4xx and a reason', async () => {
    const dir = await tempDir('daemon-rootfs-bad');
    const daemon = await daemonOn(dir, registry.host);
    const traversal = await daemonRequest(daemon.socket, 'DELETE', '/v1/rootfs', { id: '../../etc' });
    expect(traversal.status).toBe(400);
    const unknown = await daemonRequest(daemon.socket, 'POST', '/v1/rootfs', { reference: 'NOPE1.0-JDK11.0' });
    expect(unknown.status).toBe(404);
    expect(JSON.parse(unknown.body).error.message).toMatch(/NOPE1\.0/);
    const extra = await daemonRequest(daemon.socket, 'POST', '/v1/rootfs', { reference: 'JDK11.0', privileged: true });
    expect(extra.status).toBe(400);
    expect(await mountsBelow(daemon.root)).toEqual([]);
  });
});

describe('size budget', () => {
  it('a daemon with --max-store-size collects after a pull', async () => {
    const dir = await tempDir('daemon-budget');
    const daemon = await daemonOn(dir, registry.host, ['--max-store-size', '1', '--gc-min-age', '0']);
    const r = await runCli(['--root', daemon.root, '--server', registry.host, 'pull', 'JDK11.0-GRD7.0', '--socket', daemon.socket]);
    expect(r.code).toBe(0);
    const deadline = Date.now() + 20_000;
    let stats = JSON.parse((await daemon.get('/v1/stats')).body);
    // GC removes layers, then blobs: wait for both, not for the first to reach zero.
    while ((stats.store.layers > 0 || stats.store.blobs > 0) && Date.now() < deadline) {
      await new Promise((res) => setTimeout(res, 100));
      stats = JSON.parse((await daemon.get('/v1/stats')).body);
    }
    // Nothing is mounted, so over a 1-byte budget every layer and blob goes.
    expect(stats.store).toEqual({ blobs: 0, blobBytes: 0, layers: 0, unpackedBytes: 0 });
    // The daemon says so once the collection returns, which is after its last removal.
    while (!/gc under the size budget/.test(daemon.log()) && Date.now() < deadline) await new Promise((res) => setTimeout(res, 50));
    expect(daemon.log()).toMatch(/gc under the size budget/);
  });
});

/** A CLI pulling `code` through a fresh daemon, whose 8 MiB package layer the proxy throttles to 1 MiB/s. */
interface SlowPull {
  daemon: Awaited<ReturnType<typeof daemonOn>>;
  proxy: Awaited<ReturnType<typeof startProxy>>;
  slow: ReturnType<typeof buildLayer>;
  puller: ReturnType<typeof spawnCli>;
  stderr(): string;
  exit: Promise<number | null>;
}

/** Starts a SlowPull and resolves once the slow blob is streaming; the caller closes `proxy`. */
async function startSlowPull(code: string, seed: number, dirName: string): Promise<SlowPull> {
  const slow = buildLayer(packageFiles(code, { bytes: 8 * 1024 * 1024, seed }));
  await pushImage(registry.url, 'hostpull', code, [fixtures.base, slow], { cmd: ['/bin/sh'] });
  const proxy = await startProxy(registry.url);
  proxy.setFault((req) => (req.method === 'GET' && req.path.endsWith(`/blobs/${slow.digest}`) ? { throttleBytesPerSec: 1024 * 1024 } : undefined));
  const daemon = await daemonOn(await tempDir(dirName), proxy.host);
  const puller = spawnCli(['--root', daemon.root, '--server', proxy.host, 'pull', code, '--socket', daemon.socket]);
  let stderr = '';
  puller.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const exit = new Promise<number | null>((resolve) => puller.once('exit', (c) => resolve(c)));
  const deadline = Date.now() + 30_000;
  while (!proxy.requests.some((q) => q.path.endsWith(`/blobs/${slow.digest}`) && q.bytes > 0)) {
    if (Date.now() > deadline) {
      puller.kill('SIGKILL');
      await proxy.close();
      throw new Error('the slow blob never started streaming');
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return { daemon, proxy, slow, puller, stderr: () => stderr, exit };
}

describe('a daemon that dies under a client', () => {
  it('kill -9 during a pull: the CLI says the daemon exited, and what to do', async () => {
    const { daemon, proxy, stderr, exit } = await startSlowPull('SLOW1.0', 12, 'daemon-dies');
    try {
      daemon.child.kill('SIGKILL');
      expect(await exit).toBe(1);
      expect(stderr()).not.toMatch(/other side closed$/m);
      expect(stderr()).toMatch(new RegExp(`^hostpull: the daemon on ${daemon.socket.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} \\(pid ${daemon.child.pid}\\) exited during the pull`, 'm'));
      expect(stderr()).toMatch(/^hint: it was stopped or crashed: see its log .*--no-daemon; a pull resumes what was already downloaded$/m);
    } finally {
      await proxy.close();
    }
  });
});

describe('a client interrupted during a pull through the daemon', () => {
  it('Ctrl-C: the CLI says it was interrupted, the daemon stops that pull and keeps serving', async () => {
    const { daemon, proxy, slow, puller, stderr, exit } = await startSlowPull('SLOW2.0', 13, 'client-interrupted');
    try {
      puller.kill('SIGINT');
      expect(await exit).toBe(130); // 128 + SIGINT, as a shell reports an interrupted command
      expect(stderr()).toBe('hostpull: interrupted by SIGINT\n');
      // The daemon saw its client go and ended the pull; it still answers and pulls.
      for (const until = Date.now() + 10_000; JSON.parse((await daemonRequest(daemon.socket, 'GET', '/v1/health')).body).activePulls > 0; ) {
        if (Date.now() > until) throw new Error('the daemon kept the interrupted pull running');
        await new Promise((r) => setTimeout(r, 50));
      }
      proxy.clearFaults();
      const again = await runCli(['--root', daemon.root, '--server', proxy.host, 'pull', 'SLOW2.0', '--json', '--socket', daemon.socket]);
      expect(again.code, again.stderr).toBe(0);
      const slowOutcome = (JSON.parse(again.stdout) as { layers: Array<{ digest: string; hit: boolean; unpacked: boolean }> }).layers.find((l) => l.digest === slow.digest);
      // Not a hit: the interrupted pull left the slow layer unfinished (its partial download may be resumed).
      expect(slowOutcome).toMatchObject({ hit: false, unpacked: true });
    } finally {
      await proxy.close();
    }
  });
});

describe('graceful stop', () => {
  it('SIGTERM during a large pull exits 0 and parks the download; the next daemon resumes it with Range', async () => {
    const big = buildLayer(packageFiles('HUGE1.0', { bytes: 16 * 1024 * 1024, seed: 11 }));
    await pushImage(registry.url, 'hostpull', 'HUGE1.0', [fixtures.base, big], { cmd: ['/bin/sh'] });
    const proxy = await startProxy(registry.url);
    try {
      const dir = await tempDir('daemon-stop');
      proxy.setFault((req) => (req.method === 'GET' && req.path.endsWith(`/blobs/${big.digest}`) ? { throttleBytesPerSec: 2 * 1024 * 1024 } : undefined));
      const daemon = await daemonOn(dir, proxy.host, ['--stop-timeout', '200ms']);
      const puller = spawnCli(['--root', daemon.root, '--server', proxy.host, 'pull', 'HUGE1.0', '--socket', daemon.socket]);
      let pullerErr = '';
      puller.stderr!.setEncoding('utf8').on('data', (s: string) => (pullerErr += s));
      const pullerExit = new Promise<number | null>((resolve) => puller.once('exit', (code) => resolve(code)));
      const deadline = Date.now() + 30_000;
      for (;;) {
        const req = proxy.requests.find((q) => q.path.endsWith(`/blobs/${big.digest}`));
        if (req && req.bytes > 2 * 1024 * 1024) break;
        if (Date.now() > deadline) throw new Error('the big blob never started streaming');
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(await daemon.stop()).toEqual({ code: 0, signal: null });
      expect(daemon.log()).toMatch(/requests aborted at stop/);
      expect(await pullerExit).toBe(1);
      expect(pullerErr).toMatch(/daemon stopped before this pull finished/);

      proxy.clearFaults();
      const again = await daemonOn(dir, proxy.host);
      const before = proxy.requests.length;
      const r = await runCli(['--root', again.root, '--server', proxy.host, 'pull', 'HUGE1.0', '--json', '--socket', again.socket], { timeoutMs: 120_000 });
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      const resumed = proxy.requests.slice(before).filter((q) => q.path.endsWith(`/blobs/${big.digest}`));
      expect(resumed).toHaveLength(1);
      expect(resumed[0]!.range).toMatch(/^bytes=[1-9]\d*-$/);
      const start = Number(/bytes=(\d+)-/.exec(resumed[0]!.range!)![1]);
      const layer = JSON.parse(r.stdout).layers.find((l: { digest: string }) => l.digest === big.digest);
      expect(layer.resumedFrom).toBe(start);
      expect(layer.fetchedBytes).toBe(big.size - start);
      // The daemon logs the pull after its answer has gone: the client may be done first.
      await vi.waitFor(() => expect(again.log()).toContain('HUGE1.0'), { timeout: 5000, interval: 50 });
    } finally {
      await proxy.close();
    }
  });
});
