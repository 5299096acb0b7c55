/**
 * The daemon's rootfs API under concurrent clients: each client creates a rootfs
 * (POST /v1/rootfs) and removes it (DELETE /v1/rootfs), again and again. Reports throughput,
 * p50/p99 latency of each verb and the daemon's CPU time per request, for one or more builds of
 * hostpull measured back to back on the same registry and image (rounds alternate between the
 * builds, so a machine that gets busier affects them alike).
 *
 *   npx vite-node bench/rootfs-api.ts -- --cli main=/path/to/main/dist/cli/main.js --cli branch=dist/cli/main.js
 *
 * Options: --clients 16, --cycles 400 (create+remove per round, over all clients), --rounds 2,
 * --json FILE, --profile DIR (a V8 CPU profile of each daemon, DIR/<label>-<round>/). Needs root (overlay mounts) and /usr/bin/docker-registry, as the tests do.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { LocalRegistry } from '../src/bench/local-registry.js';
import { pushFixtureSet } from '../test/helpers/fixtures.js';

const TAG = 'JDK11.0-MVN3.8-GRD7.0';
const CLK_TCK = 100;

interface Args {
  clis: Array<{ label: string; entry: string }>;
  clients: number;
  cycles: number;
  rounds: number;
  json: string | undefined;
  profile: string | undefined;
}

function parseArgs(argv: string[]): Args {
  const out: Args = { clis: [], clients: 16, cycles: 400, rounds: 2, json: undefined, profile: undefined };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const v = argv[i + 1];
    if (a === '--') continue;
    if (a === '--cli' && v) {
      const [label, entry] = v.includes('=') ? [v.slice(0, v.indexOf('=')), v.slice(v.indexOf('=') + 1)] : [v, v];
      out.clis.push({ label, entry: resolve(entry) });
    } else if (a === '--clients' && v) out.clients = Number(v);
    else if (a === '--cycles' && v) out.cycles = Number(v);
    else if (a === '--rounds' && v) out.rounds = Number(v);
    else if (a === '--json' && v) out.json = v;
    else if (a === '--profile' && v) out.profile = resolve(v);
    else throw new Error(`unknown argument ${a}`);
    i++;
  }
  if (out.clis.length === 0) out.clis.push({ label: 'this', entry: resolve('dist/cli/main.js') });
  for (const c of out.clis) if (!existsSync(c.entry)) throw new Error(`no CLI at ${c.entry} (build it first)`);
  return out;
}

function call(agent: Agent, socketPath: string, method: string, body: unknown): Promise<{ status: number; body: string }> {
  const payload = JSON.stringify(body);
  return new Promise((resolvePromise, reject) => {
    const req = request({ socketPath, agent, path: '/v1/rootfs', method, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (s: string) => (text += s));
      res.once('end', () => resolvePromise({ status: res.statusCode ?? 0, body: text }));
      res.once('error', reject);
    });
    req.once('error', reject);
    req.end(payload);
  });
}

/** CPU time of a process so far: user (our JavaScript, SQLite) and system (mounts, files). */
function cpuMs(pid: number): { user: number; sys: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { user: (Number(fields[11]) * 1000) / CLK_TCK, sys: (Number(fields[12]) * 1000) / CLK_TCK };
}

function mountCount(): number {
  return readFileSync('/proc/self/mountinfo', 'utf8').split('\n').length - 1;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

async function startDaemon(entry: string, root: string, socket: string, server: string, profileDir?: string): Promise<ChildProcess> {
  const nodeArgs = profileDir ? ['--cpu-prof', '--cpu-prof-dir', profileDir] : [];
  const child = spawn(process.execPath, [...nodeArgs, entry, '--root', root, '--server', server, '--log-level', 'warn', 'daemon', '--socket', socket], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const deadline = Date.now() + 30_000;
  while (!existsSync(socket)) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`daemon did not start: ${stderr}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return child;
}

interface RoundResult {
  label: string;
  round: number;
  cycles: number;
  errors: number;
  seconds: number;
  requestsPerSecond: number;
  postMs: { p50: number; p99: number };
  deleteMs: { p50: number; p99: number };
  daemonCpuMsPerRequest: number;
  daemonUserCpuMsPerRequest: number;
  daemonSysCpuMsPerRequest: number;
  /**
   * Mounts in the host's mount table during the round (max of samples every 100 ms): mount(2),
   * umount(2) and reading mountinfo all cost more with a bigger table, and on a shared machine
   * other processes' mounts count too.
   */
  hostMountsMax: number;
}

async function round(label: string, entry: string, n: number, server: string, args: Args): Promise<RoundResult> {
  const dir = await mkdtemp(join(tmpdir(), `hostpull-bench-rootfs-${label}-`));
  const socket = join(dir, 'hostpull.sock');
  const daemon = await startDaemon(entry, join(dir, 'root'), socket, server, args.profile ? join(args.profile, `${label}-${n}`) : undefined);
  const agent = new Agent({ keepAlive: true, maxSockets: args.clients });
  try {
    // Warm: the image is pulled and unpacked once, outside the measurement.
    const first = await call(agent, socket, 'POST', { reference: TAG });
    if (first.status !== 201) throw new Error(`warm-up POST: ${first.status} ${first.body}`);
    await call(agent, socket, 'DELETE', { id: JSON.parse(first.body).id });
    const post: number[] = [];
    const del: number[] = [];
    let errors = 0;
    let next = 0;
    let hostMountsMax = 0;
    const sampler = setInterval(() => (hostMountsMax = Math.max(hostMountsMax, mountCount())), 100);
    const cpu0 = cpuMs(daemon.pid!);
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: args.clients }, async () => {
        while (next++ < args.cycles) {
          const a = performance.now();
          const created = await call(agent, socket, 'POST', { reference: TAG });
          post.push(performance.now() - a);
          if (created.status !== 201) {
            errors++;
            continue;
          }
          const b = performance.now();
          const removed = await call(agent, socket, 'DELETE', { id: JSON.parse(created.body).id });
          del.push(performance.now() - b);
          if (removed.status !== 204) errors++;
        }
      }),
    );
    const seconds = (performance.now() - t0) / 1000;
    const cpu1 = cpuMs(daemon.pid!);
    const user = cpu1.user - cpu0.user;
    const sys = cpu1.sys - cpu0.sys;
    clearInterval(sampler);
    post.sort((x, y) => x - y);
    del.sort((x, y) => x - y);
    const requests = post.length + del.length;
    const r1 = (x: number) => Math.round(x * 10) / 10;
    return {
      label,
      round: n,
      cycles: args.cycles,
      errors,
      seconds: r1(seconds),
      requestsPerSecond: r1(requests / seconds),
      postMs: { p50: r1(percentile(post, 50)), p99: r1(percentile(post, 99)) },
      deleteMs: { p50: r1(percentile(del, 50)), p99: r1(percentile(del, 99)) },
      daemonCpuMsPerRequest: r1((user + sys) / requests),
      daemonUserCpuMsPerRequest: r1(user / requests),
      daemonSysCpuMsPerRequest: r1(sys / requests),
      hostMountsMax,
    };
  } finally {
    agent.destroy();
    daemon.kill('SIGTERM');
    await new Promise((r) => daemon.once('exit', r));
    // Every rootfs was removed through the API (the daemon leaves none mounted): a plain rm will do.
    await rm(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const registryDir = await mkdtemp(join(tmpdir(), 'hostpull-bench-registry-'));
  const registry = await LocalRegistry.start({ dir: registryDir });
  const results: RoundResult[] = [];
  try {
    await pushFixtureSet(registry.url, { codes: ['JDK11.0', 'MVN3.8', 'GRD7.0'], composites: [TAG] });
    for (let n = 1; n <= args.rounds; n++) {
      for (const { label, entry } of args.clis) {
        const r = await round(label, entry, n, registry.host, args);
        results.push(r);
        process.stdout.write(
          `${label} round ${n}: ${r.requestsPerSecond} req/s, POST p50 ${r.postMs.p50} ms p99 ${r.postMs.p99} ms, ` +
            `DELETE p50 ${r.deleteMs.p50} ms p99 ${r.deleteMs.p99} ms, daemon CPU ${r.daemonCpuMsPerRequest} ms/request (user ${r.daemonUserCpuMsPerRequest}, sys ${r.daemonSysCpuMsPerRequest}), ${r.errors} errors, host mounts ≤ ${r.hostMountsMax}\n`,
        );
      }
    }
  } finally {
    await registry.stop();
    await rm(registryDir, { recursive: true, force: true });
  }
  for (const { label } of args.clis) {
    const mine = results.filter((r) => r.label === label);
    const median = (f: (r: RoundResult) => number) => {
      const v = mine.map(f).sort((x, y) => x - y);
      const m = v.length % 2 ? v[(v.length - 1) >> 1]! : (v[v.length / 2 - 1]! + v[v.length / 2]!) / 2;
      return Math.round(m * 100) / 100;
    };
    process.stdout.write(
      `${label} median of ${mine.length}: ${median((r) => r.requestsPerSecond)} req/s, POST p99 ${median((r) => r.postMs.p99)} ms, DELETE p99 ${median((r) => r.deleteMs.p99)} ms, ` +
        `daemon CPU ${median((r) => r.daemonCpuMsPerRequest)} ms/request (user ${median((r) => r.daemonUserCpuMsPerRequest)}, sys ${median((r) => r.daemonSysCpuMsPerRequest)})\n`,
    );
  }
  if (args.json) writeFileSync(args.json, `${JSON.stringify({ clients: args.clients, tag: TAG, results }, null, 2)}\n`);
}

await main();
