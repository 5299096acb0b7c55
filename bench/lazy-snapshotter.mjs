#!/usr/bin/env node
// bench/lazy-snapshotter.mjs — containerd CRI pulls through hostpull's snapshotter, whole vs
// `--snapshotter-lazy`, on the demo's real packages (not a test). Needs root (FUSE, overlay,
// containerd, runc) and the demo's trees: run `npm run demo` once, then `npx tsc -p tsconfig.json`.
//
//   node bench/lazy-snapshotter.mjs      # figures on stderr, JSON on stdout and in $WORK/results.json
//   REPS=2 alternates the modes twice; WORK (default /var/tmp/hostpull-bench-lazysnap).
//
// For `JDK17.0-MVN3.8` and `GO1.19` (composites synthesised by `hostpull serve` over the demo
// layout, packages and base published seekable): a fresh hostpull store and a fresh containerd
// for every pull; PullImage over CRI gRPC timed in this process (time to ready), the bytes the
// server sent during it (a counting proxy in front of it), then `ctr run` of the workload's
// command: time to its first output and the bytes before it. Last, after a `hostpull run --lazy`
// of the composite taught the server its prefetch list, lazy pulls that prefetch it. Only 127.0.0.1.
import { spawn, execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { startLayoutServer } from './layout-server.mjs';

const REPO = resolve(new URL('..', import.meta.url).pathname);
const CLI = join(REPO, 'dist/cli/main.js');
const DEMO = process.env.HOSTPULL_DEMO_WORK ?? '/var/tmp/hostpull-demo';
const WORK = process.env.WORK ?? '/var/tmp/hostpull-bench-lazysnap';
const REPS = Number(process.env.REPS ?? 1);
const PACKAGES = {
  'JDK17.0': { dir: 'jdk-17.0', env: 'JAVA_HOME=/opt/jdk-17.0' },
  'MVN3.8': { dir: 'mvn-3.8', env: 'MAVEN_HOME=/opt/mvn-3.8' },
  'GO1.19': { dir: 'go-1.19', env: 'GOROOT=/opt/go-1.19' },
};
const WORKLOADS = [
  { tag: 'JDK17.0-MVN3.8', cmd: ['mvn', '-v'] },
  { tag: 'GO1.19', cmd: ['go', 'version'] },
];
const log = (...a) => console.error('bench:', ...a);
const loadNow = () => loadavg().map((l) => l.toFixed(2)).join(' ');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A TCP relay to `port` counting the bytes that came back (the server's responses, Range or whole). */
async function byteCounter(port) {
  const counter = { received: 0 };
  const relay = createServer((down) => {
    const up = connect(port, '127.0.0.1');
    up.on('data', (chunk) => (counter.received += chunk.length));
    down.pipe(up).pipe(down);
    const end = () => (down.destroy(), up.destroy());
    up.on('error', end);
    down.on('error', end);
  });
  await new Promise((r) => relay.listen(0, '127.0.0.1', r));
  return Object.assign(counter, { host: `127.0.0.1:${relay.address().port}`, close: () => relay.close() });
}

function unmountBelow(dir) {
  const found = execFileSync('awk', ['-v', `d=${dir}/`, 'index($5, d) == 1 {print $5}', '/proc/self/mountinfo'], { encoding: 'utf8' }).split('\n').filter(Boolean);
  for (const m of found.sort().reverse()) execFileSync('umount', ['-l', m]);
}

function waitForSocket(path, what) {
  return (async () => {
    for (let i = 0; i < 300; i++) {
      if (existsSync(path)) return;
      await sleep(100);
    }
    throw new Error(`${what} did not create ${path}`);
  })();
}

/** A hostpull daemon with its snapshotter and a containerd using it, both fresh, under `dir`. */
async function startNode(dir, registryHost, lazy) {
  mkdirSync(join(dir, 'certs.d', registryHost), { recursive: true });
  writeFileSync(join(dir, 'certs.d', registryHost, 'hosts.toml'), `server = "http://${registryHost}"\n[host."http://${registryHost}"]\n  capabilities = ["pull", "resolve"]\n`);
  const snapSock = join(dir, 'snapshotter.sock');
  const ctdSock = join(dir, 'containerd.sock');
  const daemon = spawn(process.execPath, [CLI, '--root', join(dir, 'store'), '--log-level', 'warn', 'daemon', '--socket', join(dir, 'hostpull.sock'), '--snapshotter-socket', snapSock, ...(lazy ? ['--snapshotter-lazy'] : [])], { stdio: ['ignore', 'ignore', 'inherit'] });
  await waitForSocket(snapSock, 'the hostpull daemon');
  const toml = [
    'version = 2',
    `root = "${dir}/containerd/root"`,
    `state = "${dir}/containerd/state"`,
    `[grpc]\n  address = "${ctdSock}"`,
    `[ttrpc]\n  address = "${ctdSock}.ttrpc"`,
    `[proxy_plugins.hostpull]\n  type = "snapshot"\n  address = "${snapSock}"`,
    `[plugins."io.containerd.internal.v1.opt"]\n  path = "${dir}/containerd/opt"`,
    `[plugins."io.containerd.grpc.v1.cri"]\n  stream_server_port = "0"`,
    `  [plugins."io.containerd.grpc.v1.cri".containerd]\n    snapshotter = "hostpull"\n    disable_snapshot_annotations = false`,
    `  [plugins."io.containerd.grpc.v1.cri".cni]\n    bin_dir = "${dir}/cni"\n    conf_dir = "${dir}/cni"`,
    `  [plugins."io.containerd.grpc.v1.cri".registry]\n    config_path = "${dir}/certs.d"`,
  ].join('\n');
  writeFileSync(join(dir, 'containerd.toml'), `${toml}\n`);
  mkdirSync(join(dir, 'cni'), { recursive: true });
  const containerd = spawn('/usr/bin/containerd', ['--config', join(dir, 'containerd.toml')], { stdio: 'ignore' });
  await waitForSocket(ctdSock, 'containerd');
  const stopOne = async (child) => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const gone = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await gone;
  };
  return {
    ctdSock,
    stop: async () => {
      await stopOne(containerd);
      await stopOne(daemon);
      unmountBelow(dir);
    },
  };
}

/** PullImage through containerd's CRI ImageService, timed here once the client is connected. */
async function criPull(ctdSock, image) {
  const { credentials } = await import('@grpc/grpc-js');
  const { loadProto, serviceOf } = await import(join(REPO, 'dist/snapshotter/proto.js'));
  const Images = serviceOf(loadProto('cri/runtime/v1/api.proto'), 'runtime.v1.ImageService');
  const client = new Images(`unix:${ctdSock}`, credentials.createInsecure());
  for (let i = 0; ; i++) {
    // Ready means the CRI plugin answers too, not only the socket.
    const ok = await new Promise((r) => client.ListImages({}, { deadline: Date.now() + 2000 }, (err) => r(!err)));
    if (ok) break;
    if (i > 100) throw new Error('the CRI plugin did not answer');
    await sleep(100);
  }
  const t0 = performance.now();
  await new Promise((res, rej) => client.PullImage({ image: { image } }, { deadline: Date.now() + 600_000 }, (err, r) => (err ? rej(err) : res(r))));
  const ms = performance.now() - t0;
  client.close();
  return Math.round(ms);
}

/** `ctr run --rm` of the command: ms to its first output, and the bytes the server sent before it. */
async function ctrRun(ctdSock, image, id, cmd, counter) {
  const before = counter.received;
  const t0 = performance.now();
  const child = spawn('/usr/bin/ctr', ['--address', ctdSock, '--namespace', 'k8s.io', 'run', '--rm', '--snapshotter', 'hostpull', image, id, ...cmd], { stdio: ['ignore', 'pipe', 'pipe'] });
  let first;
  let bytesBefore = 0;
  let out = '';
  let err = '';
  child.stdout.on('data', (b) => {
    if (first === undefined) {
      first = performance.now();
      bytesBefore = counter.received - before;
    }
    out += b;
  });
  child.stderr.on('data', (b) => (err += b));
  const code = await new Promise((r) => child.once('exit', r));
  if (code !== 0 || first === undefined) throw new Error(`ctr run ${image} exited ${code}: ${err.slice(-1500)}`);
  return { firstOutputMs: Math.round(first - t0), bytesBeforeOutput: bytesBefore, output: out.split('\n')[0] };
}

async function main() {
  for (const { dir: d } of Object.values(PACKAGES)) if (!existsSync(join(DEMO, 'pkgs', d))) throw new Error(`${join(DEMO, 'pkgs', d)} is missing: run \`npm run demo\` first`);
  if (existsSync(WORK)) unmountBelow(WORK);
  rmSync(WORK, { recursive: true, force: true });
  mkdirSync(WORK, { recursive: true });
  const results = { load: { start: loadNow() }, pulls: {} };
  log('load average at start', results.load.start);

  const layout = join(WORK, 'layout');
  cpSync(join(DEMO, 'layout'), layout, { recursive: true });
  const { pushBaseImage } = await import(join(REPO, 'dist/demo/push-base.js'));
  const { LayoutUpstream } = await import(join(REPO, 'dist/server/layout-upstream.js'));
  await pushBaseImage({ rootfs: join(DEMO, 'base', 'rootfs'), upstream: new LayoutUpstream({ dir: layout }), repository: 'base/bookworm-slim', tag: 'demo', tmpDir: WORK });
  const { server: serve, url: serverUrl, token } = await startLayoutServer({ cli: CLI, work: WORK, layout, logLevel: 'warn', stderr: openSync(join(WORK, 'serve.log'), 'a') });
  const counter = await byteCounter(Number(new URL(serverUrl).port));
  try {
    for (const [code, { dir, env }] of Object.entries(PACKAGES)) {
      const prefix = `/opt/${dir}`;
      const flags = ['--code', code, '--prefix', prefix, '--env', env, '--path-add', `${prefix}/bin`];
      execFileSync(process.execPath, [CLI, '--server', serverUrl, 'publish', join(DEMO, 'pkgs', dir), ...flags, '--layout', layout, '--token-file', token], { stdio: ['ignore', 'ignore', 'inherit'] });
    }
    log('published the demo packages and base as seekable layers');
    let n = 0;
    const rowsOf = new Map(WORKLOADS.map((w) => [w.tag, { whole: [], lazy: [], 'lazy, learned list': [] }]));
    const firsts = [];
    for (let rep = 0; rep < REPS; rep++) firsts.push(...(rep % 2 === 0 ? ['whole', 'lazy'] : ['lazy', 'whole']));
    // Then a node of a fleet where one node has started the composite lazily: `hostpull run --lazy`
    // teaches the server what the start read, and the snapshotter prefetches it after the pull.
    // Only once every workload's whole and lazy pulls are done: the server derives a list for a
    // composite nobody started from the lists of its layers, and every composite here shares the
    // base layer, so a lazy pull after another composite's teaching would not be a first one.
    const learned = ['teach', ...Array(REPS).fill('lazy, learned list')];
    for (const [phase, plan] of [['first', firsts], ['learned', learned]]) {
      for (const w of WORKLOADS) {
        const image = `${counter.host}/hostpull:${w.tag}`;
        const rows = rowsOf.get(w.tag);
        if (phase === 'first') {
          // A throwaway whole pull first: the server synthesises the composite and its files are in the page cache.
          const warm = await startNode(join(WORK, `node-${n++}`), counter.host, false);
          await criPull(warm.ctdSock, image).finally(() => warm.stop());
        }
        for (const mode of plan) {
          if (mode === 'teach') {
            // Not execFileSync: the relay lives in this event loop, and the lazy run's reads go through it.
            const teacher = spawn(process.execPath, [CLI, '--root', join(WORK, `node-${n++}`), '--server', counter.host, 'run', '--lazy', w.tag, '--', ...w.cmd], { stdio: 'ignore' });
            const code = await new Promise((r) => teacher.once('exit', r));
            if (code !== 0) throw new Error(`hostpull run --lazy ${w.tag} exited ${code}`);
            continue;
          }
          const node = await startNode(join(WORK, `node-${n++}`), counter.host, mode !== 'whole');
          try {
            const before = counter.received;
            const pullMs = await criPull(node.ctdSock, image);
            const bytesToReady = counter.received - before;
            const run = await ctrRun(node.ctdSock, image, `bench-${n}`, w.cmd, counter);
            rows[mode].push({ pullMs, bytesToReady, ...run, runBytesFromPull: run.bytesBeforeOutput + bytesToReady, load: loadNow() });
            log(`${w.tag} [${mode}] PullImage ${pullMs} ms, ${(bytesToReady / 1e6).toFixed(2)} MB to ready; ctr run ${w.cmd.join(' ')}: first output ${run.firstOutputMs} ms after ${(run.bytesBeforeOutput / 1e6).toFixed(2)} MB more → ${JSON.stringify(run.output)} (load ${loadNow()})`);
          } finally {
            await node.stop();
          }
        }
      }
    }
    for (const w of WORKLOADS) {
      const rows = rowsOf.get(w.tag);
      const best = (mode, k) => Math.min(...rows[mode].map((r) => r[k]));
      const compressed = best('whole', 'bytesToReady');
      results.pulls[w.tag] = {
        ...rows,
        ratios: {
          pullTime: +(best('lazy', 'pullMs') / best('whole', 'pullMs')).toFixed(3),
          bytesToReady: +(best('lazy', 'bytesToReady') / compressed).toFixed(4),
          pullPlusFirstOutput: +((best('lazy', 'pullMs') + best('lazy', 'firstOutputMs')) / (best('whole', 'pullMs') + best('whole', 'firstOutputMs'))).toFixed(3),
          bytesToFirstOutput: +(best('lazy', 'runBytesFromPull') / compressed).toFixed(4),
          learnedPullPlusFirstOutput: +((best('lazy, learned list', 'pullMs') + best('lazy, learned list', 'firstOutputMs')) / (best('whole', 'pullMs') + best('whole', 'firstOutputMs'))).toFixed(3),
        },
      };
      log(`${w.tag}: lazy/whole PullImage time ${results.pulls[w.tag].ratios.pullTime}, bytes to ready ${results.pulls[w.tag].ratios.bytesToReady} of ${(compressed / 1e6).toFixed(1)} MB; pull + first output ${results.pulls[w.tag].ratios.pullPlusFirstOutput} (with a learned list ${results.pulls[w.tag].ratios.learnedPullPlusFirstOutput}), bytes to first output ${results.pulls[w.tag].ratios.bytesToFirstOutput}`);
    }
  } finally {
    counter.close();
    serve.kill('SIGTERM');
  }
  results.load.end = loadNow();
  writeFileSync(join(WORK, 'results.json'), `${JSON.stringify(results, null, 2)}\n`);
  console.log(JSON.stringify(results, null, 2));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
