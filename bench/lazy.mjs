#!/usr/bin/env node
// bench/lazy.mjs — lazy pulling and seekable publishing on the demo's real packages (not a test).
//
//   npm run demo            # once: builds the trees and the layout under /var/tmp/hostpull-demo
//   bash bench/lazy.sh      # builds, then runs this; figures on stdout, JSON in $WORK/results.json
//   SKIP_PUBLISH=1 leaves out part 1, SKIP_THROUGHPUT=1 part 3; ONLY=GO1.19 runs one workload of part 2;
//   REPS=5 runs the whole, warm, first-node and second-node starts five times, alternated, and
//   reports medians;
//   SETTLE_S=370 waits that long after the last run emptied its trash (see trash() below), KEEP=1
//   keeps the trash; SPAN_SIZE=1M publishes the packages with another span size. LINK=200mbit puts
//   the server behind a link of that bandwidth (a network namespace and a shaped veth pair,
//   shaped-link.mjs) instead of loopback, where a whole pull is bound by this machine's CPU, not by
//   the network.
//
// 1. publish: `hostpull publish` of JDK17.0 and GO1.19 against `tar --sort=name | pigz -6` of the
//    same tree, alternated, wall and CPU time each.
// 2. start: `hostpull run REF -- CMD` on a fresh store, whole vs --lazy vs --lazy on a second fresh
//    node (which gets the learned prefetch list from the server), and the whole node run again
//    with everything local (the floor no start can beat): time to the first byte of
//    output, and bytes the node received from the server before it (a counting proxy between the
//    node and `hostpull serve`), for `JDK17.0-MVN3.8 -- mvn -v` and `GO1.19 -- go version`; and the
//    machine's CPU time before it, all processes and cores, whose share per core bounds the wall
//    time from below on this machine however well the work overlapped. Then `JDK17.0 -- java
//    -version`, a composite no node has started, whose JDK layer JDK17.0-MVN3.8's first start
//    taught the server: its first start with no list against one with the list the server derives
//    from its layers (what other composites' first starts read of them).
// 3. throughput: reading all of /opt/go-1.19 (tar to /dev/null) through the lazy mount, cold (spans
//    fetched as read) and warm (spans cached), against the unpacked layer directory.
//
// Everything talks to 127.0.0.1 only. The machine may be shared: the script prints the load.
import { execFile, execFileSync, spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { countingProxy } from './counting-proxy.mjs';
import { startLayoutServer } from './layout-server.mjs';
import { shapedLink } from './shaped-link.mjs';

const REPO = resolve(new URL('..', import.meta.url).pathname);
// HOSTPULL_BENCH_CLI: the CLI of another build (a before/after comparison); the demo base is pushed with this one's.
const CLI = process.env.HOSTPULL_BENCH_CLI ?? join(REPO, 'dist/cli/main.js');
/** The timed runs start as users start hostpull: its launcher beside main.js (from the startup snapshot). */
const LAUNCHER = join(dirname(CLI), 'hostpull');
const DEMO = process.env.HOSTPULL_DEMO_WORK ?? '/var/tmp/hostpull-demo';
const WORK = process.env.WORK ?? '/var/tmp/hostpull-bench-lazy';
const REPS = Math.max(1, Number(process.env.REPS ?? 1));
/** In WORK: when the trash was last emptied (ms since the epoch), for SETTLE_S. */
const LAST_MASS_DELETE = '.last-mass-delete';
let trashed = 0;
const PKGS = {
  'JDK17.0': { dir: 'jdk-17.0', flags: ['--prefix', '/opt/jdk-17.0', '--env', 'JAVA_HOME=/opt/jdk-17.0', '--path-add', '/opt/jdk-17.0/bin'] },
  'MVN3.8': { dir: 'mvn-3.8', flags: ['--prefix', '/opt/mvn-3.8', '--env', 'MAVEN_HOME=/opt/mvn-3.8', '--path-add', '/opt/mvn-3.8/bin'] },
  'GO1.19': { dir: 'go-1.19', flags: ['--prefix', '/opt/go-1.19', '--env', 'GOROOT=/opt/go-1.19', '--path-add', '/opt/go-1.19/bin'] },
};
const WORKLOADS = [
  { ref: 'JDK17.0-MVN3.8', cmd: ['mvn', '-v'] },
  { ref: 'GO1.19', cmd: ['go', 'version'] },
  // `java -version` writes to stderr; the timing watches stdout.
  { ref: 'JDK17.0', cmd: ['sh', '-c', 'exec java -version 2>&1'], derivedFrom: 'JDK17.0-MVN3.8' },
];

const say = (...a) => console.error('bench:', ...a);
const load = () => loadavg().map((l) => l.toFixed(2)).join(' ');

/** Runs a command, returns wall ms and the children's CPU ms (from /usr/bin/time). */
function timed(cmd, args, opts = {}) {
  const out = join(WORK, 'time.txt');
  const t0 = performance.now();
  execFileSync('/usr/bin/time', ['-f', '%U %S', '-o', out, cmd, ...args], { stdio: ['ignore', 'ignore', 'inherit'], ...opts });
  const wall = performance.now() - t0;
  const [u, s] = execFileSync('cat', [out], { encoding: 'utf8' }).trim().split('\n').pop().split(' ').map(Number);
  return { wallMs: Math.round(wall), cpuMs: Math.round((u + s) * 1000) };
}

/**
 * Like timed(), without blocking this process: the counting proxy lives here, and a lazy mount
 * read while this event loop waits in execFileSync would wait for a proxy that cannot answer.
 */
async function timedAsync(cmd, args) {
  const out = join(WORK, 'time-async.txt');
  const t0 = performance.now();
  const child = spawn('/usr/bin/time', ['-f', '%U %S', '-o', out, cmd, ...args], { stdio: ['ignore', 'ignore', 'inherit'] });
  const code = await new Promise((r) => child.once('exit', r));
  if (code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${code}`);
  const wall = performance.now() - t0;
  const [u, s] = execFileSync('cat', [out], { encoding: 'utf8' }).trim().split('\n').pop().split(' ').map(Number);
  return { wallMs: Math.round(wall), cpuMs: Math.round((u + s) * 1000) };
}

/**
 * The machine's CPU time so far, all cores summed (ms): busy (user, nice, system, interrupts) and
 * idle. Between a start and its first output, busy ÷ cores is the shortest wall time that work
 * could take here with no core ever idle, whoever did it: hostpull, the runtime, the container,
 * the server, and this script's counting proxy, which forwards every byte.
 */
function machineCpu() {
  let busy = 0;
  let idle = 0;
  for (const { times: t } of cpus()) {
    busy += t.user + t.nice + t.sys + t.irq;
    idle += t.idle;
  }
  return { busy, idle };
}

/** Whether the server answers `ref` (a composite nobody started lazily) with a list derived from its layers. */
async function derivedListServed(proxy, ref) {
  // Not execFileSync: the proxy the CLI asks runs in this process.
  const { stdout } = await promisify(execFile)(process.execPath, [CLI, '--root', join(WORK, 'nodes', 'inspector'), '--server', proxy.host, 'inspect', '--remote', ref]);
  const { digest } = JSON.parse(stdout);
  const res = await fetch(`http://${proxy.host}/hostpull/v1/prefetch/${digest}`);
  return res.ok && (await res.json()).derived === true;
}

/** The run whose first output came at the median time (the lower middle one of an even count). */
function medianRun(runs) {
  return [...runs].sort((a, b) => a.firstOutputMs - b.firstOutputMs)[Math.floor((runs.length - 1) / 2)];
}

/** `hostpull run`: ms to the first byte of output and the bytes received before it, plus the total. */
async function runTimed(root, proxy, ref, cmd, extra = []) {
  // The previous start's writes (a whole pull's 350 MB) are on the disk before this one starts:
  // each pays for its own writeback only.
  execFileSync('sync');
  const mark = proxy.log.length;
  const requestMark = proxy.requests.length;
  const cpu0 = machineCpu();
  let cpuAtFirst;
  const t0 = performance.now();
  const child = spawn(LAUNCHER, ['--root', root, '--server', proxy.host, 'run', ...extra, ref, '--', ...cmd], { stdio: ['ignore', 'pipe', 'pipe'] });
  let first;
  let out = '';
  let err = '';
  child.stdout.on('data', (b) => {
    if (first === undefined) {
      first = performance.now();
      cpuAtFirst = machineCpu();
    }
    out += b;
  });
  child.stderr.on('data', (b) => (err += b));
  const code = await new Promise((r) => child.once('exit', r));
  const end = performance.now();
  if (code !== 0) throw new Error(`${ref} ${extra.join(' ')} exited ${code}: ${err.slice(-2000)}`);
  const entries = proxy.log.slice(mark);
  const beforeEntries = entries.filter((e) => e.at <= first);
  const before = beforeEntries.reduce((n, e) => n + e.bytes, 0);
  const total = entries.reduce((n, e) => n + e.bytes, 0);
  // Where the wait before the first output went: until the node's first received byte (start-up,
  // resolving), receiving, and from the last byte received before the output to the output.
  const ms = (at) => (at === undefined ? null : Math.round(at - t0));
  const timeline = {
    firstByteMs: ms(beforeEntries[0]?.at),
    lastByteBeforeOutputMs: ms(beforeEntries.at(-1)?.at),
    requestsBeforeOutput: new Set(beforeEntries.map((e) => `${e.path} ${e.range ?? ''}`)).size,
    // Each request made before the output: what, and when it came and was answered (results.json only).
    requests: proxy.requests
      .slice(requestMark)
      .filter((r) => r.at <= first)
      .map((r) => ({ at: ms(r.at), answeredAt: ms(r.headersAt), status: r.status, method: r.method, path: r.path.replace(/sha256:([0-9a-f]{12})[0-9a-f]{52}/g, '$1'), ...(r.range ? { range: r.range } : {}) })),
  };
  if (cpuAtFirst === undefined) throw new Error(`${ref} ${extra.join(' ')} printed nothing: ${err.slice(-2000)}`);
  const cpuBeforeOutput = { busyMs: cpuAtFirst.busy - cpu0.busy, idleMs: cpuAtFirst.idle - cpu0.idle, cores: cpus().length };
  return { firstOutputMs: Math.round(first - t0), totalMs: Math.round(end - t0), bytesBeforeOutput: before, bytesTotal: total, output: out.split('\n')[0], cpuBeforeOutput, timeline };
}

async function main() {
  for (const p of Object.values(PKGS)) if (!existsSync(join(DEMO, 'pkgs', p.dir))) throw new Error(`${join(DEMO, 'pkgs', p.dir)} is missing: run \`npm run demo\` first`);
  // Mounts an interrupted earlier run left under WORK (a container's overlay, a lazy mount) go first.
  const stale = execFileSync('sh', ['-c', `awk '$5 ~ "^${WORK}/" {print $5}' /proc/self/mountinfo | sort -r`], { encoding: 'utf8' }).split('\n').filter(Boolean);
  for (const m of stale) execFileSync('umount', ['-l', m]);
  // What an earlier run left goes to the trash, not away: see trash().
  mkdirSync(WORK, { recursive: true });
  for (const name of readdirSync(WORK)) if (name !== 'trash' && name !== LAST_MASS_DELETE) trash(join(WORK, name));
  await settle();
  const results = { load: { start: load() } };
  say('load average at start', results.load.start);

  // --- 1. publish vs tar | pigz -6 (SKIP_PUBLISH=1 to leave it out) -----------------------------
  results.publish = {};
  for (const code of process.env.SKIP_PUBLISH ? [] : ['JDK17.0', 'GO1.19']) {
    const tree = join(DEMO, 'pkgs', PKGS[code].dir);
    const runs = { hostpull: [], pigz: [] };
    for (let rep = 0; rep < 2; rep++) {
      const layout = join(WORK, `publish-${code}-${rep}`);
      runs.hostpull.push(timed(process.execPath, [CLI, 'publish', tree, '--code', code, ...PKGS[code].flags, '--layout', layout, '--no-register']));
      runs.pigz.push(timed('sh', ['-c', `tar --sort=name --owner=0 --group=0 --numeric-owner -cf - -C "${tree}" . | pigz -6 > "${join(WORK, 'pigz.tgz')}"`]));
      rmSync(layout, { recursive: true, force: true });
    }
    const med = (xs, k) => Math.min(...xs.map((x) => x[k]));
    results.publish[code] = { hostpull: runs.hostpull, pigz: runs.pigz, ratioWall: +(med(runs.hostpull, 'wallMs') / med(runs.pigz, 'wallMs')).toFixed(2), ratioCpu: +(med(runs.hostpull, 'cpuMs') / med(runs.pigz, 'cpuMs')).toFixed(2) };
    say(`publish ${code}: hostpull ${JSON.stringify(runs.hostpull)} vs tar|pigz -6 ${JSON.stringify(runs.pigz)} → best-of-2 wall ratio ${results.publish[code].ratioWall}, CPU ratio ${results.publish[code].ratioCpu} (load ${load()})`);
  }

  // --- 2. start: whole vs lazy vs second lazy node --------------------------------------------
  const layout = join(WORK, 'layout');
  cpSync(join(DEMO, 'layout'), layout, { recursive: true });
  // The base as the demo now pushes it: seekable, its TOC attached (a demo run before that
  // pushed it whole; this copy of its layout gets the seekable one under the same tag).
  {
    const { pushBaseImage } = await import(join(REPO, 'dist/demo/push-base.js'));
    const { LayoutUpstream } = await import(join(REPO, 'dist/server/layout-upstream.js'));
    const upstream = new LayoutUpstream({ dir: layout });
    const base = await pushBaseImage({ rootfs: join(DEMO, 'base', 'rootfs'), upstream, repository: 'base/bookworm-slim', tag: 'demo', tmpDir: WORK });
    results.base = { layerBytes: base.size, tocDigest: base.tocDigest };
    say(`pushed the demo base as a seekable layer (${(base.size / 1e6).toFixed(1)} MB, TOC ${base.tocDigest.slice(0, 19)})`);
  }
  const link = process.env.LINK ? shapedLink(process.env.LINK) : undefined;
  results.link = link ? link.rate : 'loopback';
  if (link) say(`the server is behind a ${link.rate} link (network namespace ${link.ns})`);
  const { server, url: serverUrl, token } = await startLayoutServer({ cli: CLI, work: WORK, layout, logLevel: 'error', stderr: 'inherit', link });
  const proxy = await countingProxy(serverUrl);
  // First starts get no list (not even one derived from another composite's); the first of each
  // image teaches the server its list (later ones change nothing: the server keeps the first).
  const firstStartProxy = await countingProxy(serverUrl, { refusePrefetchLists: ['GET', 'HEAD'] });
  // For a composite whose list must stay derived: first starts neither get nor teach one, and the
  // starts with the derived list teach none.
  const unlearnedProxy = await countingProxy(serverUrl, { refusePrefetchLists: true });
  const untaughtProxy = await countingProxy(serverUrl, { refusePrefetchLists: ['PUT'] });
  // Publishing talks to the server itself: plain http to the namespace's address is allowed by name.
  const insecure = link ? ['--insecure-registry', new URL(serverUrl).host] : [];
  try {
    for (const [code, p] of Object.entries(PKGS)) {
      const span = process.env.SPAN_SIZE ? ['--span-size', process.env.SPAN_SIZE] : [];
      execFileSync(process.execPath, [CLI, ...insecure, '--server', serverUrl, 'publish', join(DEMO, 'pkgs', p.dir), '--code', code, ...p.flags, ...span, '--layout', layout, '--token-file', token], { stdio: ['ignore', 'ignore', 'inherit'] });
    }
    say('published the demo packages as seekable layers');
    results.start = {};
    for (const w of WORKLOADS.filter((x) => !process.env.ONLY || x.ref === process.env.ONLY)) {
      const fresh = (name) => {
        const root = join(WORK, 'nodes', `${w.ref}-${name}`);
        trash(root);
        return root;
      };
      // A first run on a throwaway store probes the runtime and warms the server's caches.
      await runTimed(fresh('warmup'), proxy, w.ref, w.cmd);
      if (w.derivedFrom && !(await derivedListServed(proxy, w.ref))) {
        say(`${w.ref}: the server has no list derived from ${w.derivedFrom}'s first start (run that workload first); left out`);
        continue;
      }
      // Whole, warm, first and second lazy node run REPS rounds, alternated, and the figures are
      // their medians (this machine's noise is larger than most effects: the same whole start
      // took 2.5-4.4 s within ten minutes). Every first lazy node is served no list, so each is a
      // first start; the first round's teaches the server the prefetch list the second nodes get.
      // A derived workload's second node is a first start too, with the list derived from other
      // composites' starts, and teaches nothing, so that its list stays derived.
      const rounds = [];
      for (let i = 0; i < REPS; i++) {
        const whole = await runTimed(fresh('whole'), proxy, w.ref, w.cmd);
        // The floor: the same node again, everything local (no request), the runtime probed.
        const warm = await runTimed(join(WORK, 'nodes', `${w.ref}-whole`), proxy, w.ref, w.cmd, ['--pull', 'missing']);
        const lazy = await runTimed(fresh('lazy'), w.derivedFrom ? unlearnedProxy : firstStartProxy, w.ref, w.cmd, ['--lazy']);
        const secondNode = await runTimed(fresh('lazy2'), w.derivedFrom ? untaughtProxy : proxy, w.ref, w.cmd, ['--lazy']);
        rounds.push({ whole, warm, lazy, secondNode });
      }
      const times = (k) => rounds.map((r) => r[k].firstOutputMs);
      const whole = medianRun(rounds.map((r) => r.whole));
      const warm = medianRun(rounds.map((r) => r.warm));
      const lazy = medianRun(rounds.map((r) => r.lazy));
      const second = medianRun(rounds.map((r) => r.secondNode));
      const compressed = whole.bytesTotal;
      results.start[w.ref] = { whole, warm, lazy, [w.derivedFrom ? 'derivedList' : 'secondNode']: second, compressedBytes: compressed, reps: REPS, ...(REPS > 1 ? { rounds } : {}), load: load() };
      const shown = [
        ['whole', whole, times('whole')],
        ['warm (all local)', warm, times('warm')],
        ['lazy', lazy, times('lazy')],
        [w.derivedFrom ? `lazy, list derived from ${w.derivedFrom}'s start` : 'lazy, second node', second, times('secondNode')],
      ];
      for (const [name, r, all] of shown) {
        const of = all.length > 1 ? ` (median of ${all.join(', ')})` : '';
        say(`${w.ref} -- ${w.cmd.join(' ')} [${name}]: first output ${r.firstOutputMs} ms${of} (${(r.firstOutputMs / whole.firstOutputMs).toFixed(2)}× whole), ${(r.bytesBeforeOutput / 1e6).toFixed(1)} MB before it (${((100 * r.bytesBeforeOutput) / compressed).toFixed(1)}% of ${(compressed / 1e6).toFixed(1)} MB), run total ${r.totalMs} ms; machine CPU busy before it ${r.cpuBeforeOutput.busyMs} ms (≥ ${Math.round(r.cpuBeforeOutput.busyMs / r.cpuBeforeOutput.cores)} ms on ${r.cpuBeforeOutput.cores} cores, ${(r.cpuBeforeOutput.busyMs / r.cpuBeforeOutput.cores / whole.firstOutputMs).toFixed(2)}× whole); bytes received from ${r.timeline.firstByteMs ?? '-'} to ${r.timeline.lastByteBeforeOutputMs ?? '-'} ms in ${r.timeline.requestsBeforeOutput} requests → ${JSON.stringify(r.output)}`);
      }
    }

    // --- 3. throughput through the lazy mount vs the unpacked dir (SKIP_THROUGHPUT=1 to leave it out)
    if (!process.env.SKIP_THROUGHPUT) await throughput(proxy, results);
  } finally {
    for (const p of [proxy, firstStartProxy, unlearnedProxy, untaughtProxy]) await p.close();
    server.kill('SIGTERM');
    await new Promise((r) => (server.exitCode !== null ? r() : server.once('exit', r)));
    link?.close();
  }
  results.load.end = load();
  writeFileSync(join(WORK, 'results.json'), `${JSON.stringify(results, null, 2)}\n`);
  console.log(JSON.stringify(results, null, 2));
}

/**
 * On this machine / is ext4 without a journal: for minutes after thousands of files are deleted,
 * creating files is slower (bench/peers/README.md of the shared bench), and a whole start unpacks
 * thousands. A REPS loop that deleted the previous round's node before each whole start measured
 * GO1.19 at 5.0, 11.9 and 16.2 s. So nothing is deleted while measuring: old stores are moved to
 * WORK/trash, emptied when the run ends (KEEP=1 keeps it), and a run waits SETTLE_S
 * seconds (default 0; 370 covers ext4's longest wait) after the last emptying before it measures.
 */
function trash(path) {
  if (!existsSync(path)) return;
  mkdirSync(join(WORK, 'trash'), { recursive: true });
  renameSync(path, join(WORK, 'trash', `${basename(path)}-${process.pid}-${trashed++}`));
}
function emptyTrash() {
  if (process.env.KEEP || !existsSync(join(WORK, 'trash'))) return;
  rmSync(join(WORK, 'trash'), { recursive: true, force: true });
  writeFileSync(join(WORK, LAST_MASS_DELETE), `${Date.now()}\n`);
}

async function settle() {
  const settleMs = Number(process.env.SETTLE_S ?? 0) * 1000;
  const marker = join(WORK, LAST_MASS_DELETE);
  const last = existsSync(marker) ? Number(readFileSync(marker, 'utf8')) : 0;
  const waitMs = last + settleMs - Date.now();
  if (settleMs <= 0 || waitMs <= 0) return;
  say(`settling ${Math.ceil(waitMs / 1000)} s after the last mass delete (SETTLE_S=${settleMs / 1000})`);
  await new Promise((r) => setTimeout(r, waitMs));
}

async function throughput(proxy, results) {
  {
    const root = join(WORK, 'nodes', 'throughput');
    const child = spawn(process.execPath, [CLI, '--root', root, '--server', proxy.host, 'run', '--lazy', '--lazy-background-delay', '10m', 'GO1.19', '--', '/bin/sh', '-c', 'trap "exit 0" TERM; while :; do sleep 1; done'], { stdio: 'ignore' });
    const mnt = await (async () => {
      for (let i = 0; i < 600; i++) {
        const base = join(root, 'lazy', 'mnt');
        const dirs = existsSync(base) ? readdirSync(base).flatMap((d) => readdirSync(join(base, d)).map((n) => join(base, d, n))) : [];
        // The package's mount (the base is lazy too, and has an /opt of its own).
        const found = dirs.find((d) => existsSync(join(d, 'opt/go-1.19')));
        if (found) return found;
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error('no lazy mount appeared');
    })();
    const readAll = (dir) => timedAsync('sh', ['-c', `tar -cf - -C "${dir}" . | cat > /dev/null`]);
    const cold = await readAll(join(mnt, 'opt/go-1.19'));
    const warm = await readAll(join(mnt, 'opt/go-1.19'));
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
    const unpackedRoot = join(WORK, 'nodes', 'GO1.19-whole');
    const layers = JSON.parse(execFileSync(process.execPath, [CLI, '--root', unpackedRoot, '--server', proxy.host, 'inspect', 'GO1.19'], { encoding: 'utf8' })).layers;
    const goDir = layers.map((l) => l.unpackedAt).find((d) => d && existsSync(join(d, 'opt/go-1.19')));
    execFileSync('sh', ['-c', `tar -cf - -C "${join(goDir, 'opt/go-1.19')}" . | cat > /dev/null`]);
    const unpacked = await readAll(join(goDir, 'opt/go-1.19'));
    const bytes = Number(execFileSync('du', ['-sb', join(goDir, 'opt/go-1.19')], { encoding: 'utf8' }).split('\t')[0]);
    const mbps = (r) => +(bytes / 1e6 / (r.wallMs / 1000)).toFixed(0);
    results.throughput = { bytes, lazyCold: { ...cold, MBps: mbps(cold) }, lazyWarm: { ...warm, MBps: mbps(warm) }, unpacked: { ...unpacked, MBps: mbps(unpacked) }, load: load() };
    say(`read all of /opt/go-1.19 (${(bytes / 1e6).toFixed(0)} MB): lazy cold (spans fetched as read) ${mbps(cold)} MB/s, lazy again (kernel page cache) ${mbps(warm)} MB/s, unpacked dir (page cache) ${mbps(unpacked)} MB/s (load ${load()})`);
  }
}

// The trash goes once nothing is measured any more, also after a failed measurement.
main()
  .finally(emptyTrash)
  .catch((err) => {
    console.error(err);
    process.exit(1);
  });
