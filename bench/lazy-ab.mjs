#!/usr/bin/env node
// bench/lazy-ab.mjs — two or more builds of hostpull, alternated, on the lazy start (not a test).
//
//   VARIANTS="before=/path/a/dist/cli/hostpull after=dist/cli/hostpull" \
//   LAYOUT=/var/tmp/hostpull-bench-lazy/layout N=5 [LINK=200mbit] [FRESH=1] node bench/lazy-ab.mjs
//
// LAYOUT is an OCI layout holding the demo's packages published seekable, as `bash bench/lazy.sh`
// leaves it in $WORK/layout. One server over it (behind a shaped link with LINK, shaped-link.mjs);
// each workload is run once lazily to completion so the server learns its prefetch list, then N
// rounds, each running every variant once on a fresh store: `hostpull run --lazy` to the first
// output, then stopped, so no background unpack follows into the next run (on this disk it would
// slow it). Prints each variant's times sorted and their median, and each later variant's
// round-by-round difference from the first. Only 127.0.0.1 (or the namespace).
// FRESH=1 measures the image's first lazy start instead, every time: the nodes talk to the server
// through a proxy here that answers 404 for its prefetch lists (so none is learned or served)
// and counts the bytes each run received before its first output.
import { spawn } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { countingProxy } from './counting-proxy.mjs';
import { startLayoutServer } from './layout-server.mjs';
import { shapedLink } from './shaped-link.mjs';

const WORK = process.env.WORK ?? '/var/tmp/hostpull-bench-lazy-ab';
const N = Number(process.env.N ?? 5);
const LAYOUT = process.env.LAYOUT;
const VARIANTS = (process.env.VARIANTS ?? '').split(/\s+/).filter(Boolean).map((v) => {
  const [name, cli] = v.split('=');
  return { name, cli: resolve(cli) };
});
const WORKLOADS = [
  { ref: 'JDK17.0-MVN3.8', cmd: ['mvn', '-v'] },
  { ref: 'GO1.19', cmd: ['go', 'version'] },
].filter((w) => !process.env.ONLY || w.ref === process.env.ONLY);
if (!LAYOUT || VARIANTS.length === 0) {
  console.error('usage: VARIANTS="name=CLI name=CLI" LAYOUT=DIR [N=5] [LINK=200mbit] [ONLY=GO1.19] node bench/lazy-ab.mjs');
  process.exit(2);
}

/** Response bytes the proxy forwarded from `t0` to `t1` (performance.now() times). */
function bytesBetween(proxy, t0, t1) {
  return proxy.log.reduce((n, e) => (e.at >= t0 && e.at <= t1 ? n + e.bytes : n), 0);
}

let runs = 0;
/**
 * `hostpull run --lazy` to its first output: its ms and (through a FRESH proxy) the bytes received
 * before it; with `stop`, SIGTERM a moment after it.
 */
function firstOutput(cli, host, ref, cmd, stop, proxy) {
  const root = join(WORK, 'nodes', String(runs++));
  const args = [cli, '--root', root, '--server', host, '--insecure-registry', host, 'run', '--lazy', '--lazy-background-delay', stop ? '10m' : '0s', ref, '--', ...cmd];
  const t0 = performance.now();
  // A build's launcher (dist/cli/hostpull, from the startup snapshot) runs as itself; a .js under node.
  const child = cli.endsWith('.js') ? spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] }) : spawn(cli, args.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  let first;
  let err = '';
  child.stderr.on('data', (b) => (err += b));
  child.stdout.on('data', () => {
    if (first !== undefined) return;
    first = performance.now() - t0;
    if (stop) setTimeout(() => child.kill('SIGTERM'), 1000);
  });
  return new Promise((res, rej) =>
    child.once('exit', (code) => {
      if (first === undefined) return rej(new Error(`${ref} exited ${code} without output: ${err.slice(-1000)}`));
      res({ ms: Math.round(first), bytes: proxy ? bytesBetween(proxy, t0, t0 + first) : null });
    }),
  );
}

async function main() {
  rmSync(WORK, { recursive: true, force: true });
  mkdirSync(WORK, { recursive: true });
  const link = process.env.LINK ? shapedLink(process.env.LINK) : undefined;
  // The server runs as a module under node: a launcher's build has its main.js beside it.
  const serverCli = VARIANTS[0].cli.endsWith('.js') ? VARIANTS[0].cli : join(dirname(VARIANTS[0].cli), 'main.js');
  const { server, url } = await startLayoutServer({ cli: serverCli, work: WORK, layout: LAYOUT, logLevel: 'error', stderr: 'inherit', link });
  const proxy = process.env.FRESH ? await countingProxy(url, { refusePrefetchLists: true }) : undefined;
  const host = proxy?.host ?? new URL(url).host;
  const results = { link: link?.rate ?? 'loopback', n: N, fresh: proxy !== undefined, workloads: {} };
  const middle = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  try {
    for (const w of WORKLOADS) {
      if (!proxy) {
        const taught = await firstOutput(VARIANTS[0].cli, host, w.ref, w.cmd, false);
        console.error(`lazy-ab: ${w.ref}: first start ${taught.ms} ms (its reads are now the server's prefetch list)`);
      }
      const starts = Object.fromEntries(VARIANTS.map((v) => [v.name, []]));
      for (let i = 0; i < N; i++) for (const v of VARIANTS) starts[v.name].push(await firstOutput(v.cli, host, w.ref, w.cmd, true, proxy));
      results.workloads[w.ref] = {};
      for (const v of VARIANTS) {
        const sorted = starts[v.name].map((s) => s.ms).sort((a, b) => a - b);
        const median = middle(sorted);
        const bytes = proxy ? middle(starts[v.name].map((s) => s.bytes)) : undefined;
        results.workloads[w.ref][v.name] = { sorted, median, ...(proxy ? { bytesBeforeOutput: bytes } : {}) };
        const mb = proxy ? `, ${(bytes / 1e6).toFixed(1)} MB before it (median)` : '';
        console.error(`lazy-ab: ${w.ref} -- ${w.cmd.join(' ')} [${v.name}] first output ${sorted.join(' ')} ms, median ${median}${mb} (${results.link}${proxy ? ', first starts' : ''})`);
      }
      // Each round ran the variants back to back: its differences are freer of this machine's
      // drift (other load, the disk) than the difference of two medians.
      const [base, ...others] = VARIANTS;
      for (const v of others) {
        const deltas = starts[v.name].map((s, i) => s.ms - starts[base.name][i].ms);
        const paired = { medianDelta: middle(deltas), faster: deltas.filter((d) => d < 0).length, rounds: deltas.length };
        results.workloads[w.ref][v.name].againstFirst = paired;
        console.error(`lazy-ab: ${w.ref} [${v.name}] against [${base.name}], round by round: median difference ${paired.medianDelta > 0 ? '+' : ''}${paired.medianDelta} ms, sooner in ${paired.faster} of ${paired.rounds} rounds`);
      }
    }
  } finally {
    await proxy?.close();
    server.kill('SIGTERM');
    await new Promise((r) => (server.exitCode !== null ? r() : server.once('exit', r)));
    link?.close();
  }
  console.log(JSON.stringify(results, null, 2));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
