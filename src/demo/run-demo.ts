import { randomBytes } from 'node:crypto';
import { mkdir, rm, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { HostpullError } from '../errors.js';
import type { Digest } from '../oci/index.js';
import type { PullResult } from '../pull/index.js';
import { LayoutUpstream } from '../server/index.js';
import type { PullStats } from '../store/index.js';
import { mapLimit } from '../util/index.js';
import { AptQueryCache } from './apt-query-cache.js';
import { buildBase, type BuiltBase } from './build-base.js';
import { buildPackage, type BuiltPackage } from './build-package.js';
import { readMarker, writeMarker } from './build-marker.js';
import { checkSharedLibraries, JDK_CORE_ELF } from './check-libraries.js';
import { callCli, defaultCliEntry, type CliCall } from './cli-process.js';
import { DEFAULT_DEMO_WORK } from '../defaults.js';
import type { DemoEvent, PulledLayer } from './events.js';
import { execTool } from './exec-tool.js';
import { unmountBelow } from './leftover-mounts.js';
import { demoPackages } from './package-specs.js';
import { alreadyPublished, catalogAddArgs, describePublished, publishArgs, registeredAsExpected, rememberPublished, type PublishedPackage } from './publish-packages.js';
import { pushBaseImage, type PushedBase } from './push-base.js';
import { startServeProcess, type ServeProcess } from './serve-process.js';

/** Where the demo's base image lives in the layout, and what `serve --base` names. */
const DEMO_BASE_IMAGE = { repository: 'base/bookworm-slim', tag: 'demo' };

export interface DemoOptions {
  /** Work directory: downloads, built packages, the server's layout, the client store. Default /var/tmp/hostpull-demo. */
  work?: string;
  /** Leave `hostpull serve` running at the end (its PID and URL are in the result). Default false. */
  keepServer?: boolean;
  /** The CLI to run the steps with. Default: dist/cli/main.js of this checkout. */
  cliEntry?: string;
  /** Progress as it happens: sections, commands, their output. */
  onEvent?: (event: DemoEvent) => void;
  signal?: AbortSignal;
}

export interface DemoResult {
  work: string;
  server: { url: string; host: string; pid: number; kept: boolean; logFile: string };
  base: BuiltBase & PushedBase & { published: boolean };
  packages: Array<{ code: string; prefix: string; dir: string; files: number; bytes: number; debs: string[]; built: boolean } & PublishedPackage>;
  /** `mvn -v` in JDK17.0-MVN3.8. */
  maven: { stdout: string; banner: string };
  /** `pull GO1.19-JDK17.0 --json`. */
  goPull: { manifestDigest: Digest; layerHits: number; layerMisses: number; bytesFetched: number; bytesReused: number; layers: PulledLayer[] };
  /** `go version` in GO1.19-JDK17.0. */
  go: { stdout: string };
  stats: { text: string; json: PullStats & { store: Record<string, number> } };
  timings: { buildMs: number; publishMs: number; runMs: number; totalMs: number };
}

/** SGR escape sequences (colours, bold) out of a program's output. */
function stripAnsi(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/\x1b\[[0-9;]*m/g, '');
}

function stepFailed(call: CliCall, why?: string): HostpullError {
  const how = call.signal ? `was killed by ${call.signal}` : `exited with ${call.code}`;
  return new HostpullError('DEMO_STEP_FAILED', `\`hostpull ${call.args.join(' ')}\` ${why ?? how}`, {
    hint: 'the output above says why',
    details: { stdout: call.stdout.slice(-4000), stderr: call.stderr.slice(-4000) },
  });
}

async function preflight(signal?: AbortSignal): Promise<string> {
  if (process.getuid?.() !== 0) {
    throw new HostpullError('DEMO_NEEDS_ROOT', 'the demo mounts overlays and runs containers: run it as root', { hint: 'sudo npm run demo' });
  }
  for (const tool of ['apt-get', 'dpkg-deb', 'tar', '/sbin/ldconfig', 'umount']) {
    await execTool('sh', ['-c', 'command -v "$1" >/dev/null', 'check', tool], signal ? { signal } : {}).catch(() => {
      throw new HostpullError('DEMO_MISSING_TOOL', `${tool} is not installed`, { hint: 'the demo expects a Debian 12 host; run `bash scripts/provision` as root' });
    });
  }
  return (await execTool('dpkg', ['--print-architecture'], signal ? { signal } : {})).stdout.trim();
}

async function ensureToken(file: string): Promise<void> {
  if (await stat(file).catch(() => null)) return;
  await writeFile(file, `${randomBytes(32).toString('base64url')}\n`, { mode: 0o600 });
}

/**
 * `hostpull demo`: builds real packages from Debian's JDK 17, Maven 3.8 and Go 1.19 relocated
 * under /opt, a glibc + busybox base, serves them from an OCI layout, and walks through run,
 * pull (only the new layer is fetched) and stats with the real CLI.
 *
 * Everything built is cached in the work dir (keyed on the .deb versions), so a second run skips
 * straight to the server. The client store is reset on every run so that the "only the Go layer
 * is fetched" step shows the same thing every time.
 */
export async function runDemo(options: DemoOptions = {}): Promise<DemoResult> {
  const t0 = performance.now();
  const work = resolve(options.work ?? DEFAULT_DEMO_WORK);
  const entry = options.cliEntry ?? defaultCliEntry();
  const signal = options.signal;
  const emit = (e: DemoEvent) => options.onEvent?.(e);
  const debArch = await preflight(signal);
  await mkdir(join(work, 'pkgs'), { recursive: true });

  // ── 1. build ──────────────────────────────────────────────────────────────────────────────
  emit({ type: 'section', title: 'Build packages from Debian 12 .deb files (cached after the first run)' });
  const specs = demoPackages(debArch);
  const aptCache = new AptQueryCache(join(work, 'apt-answers.json'));
  // Two at a time: downloading and unpacking is I/O and xz, and the machine has few cores.
  const built = await mapLimit<string, BuiltBase | BuiltPackage>(['base', ...specs.map((s) => s.code)], 2, async (what, i, sig) => {
    const r = i === 0 ? await buildBase({ work, aptCache, signal: sig }) : await buildPackage(specs[i - 1]!, { work, aptCache, signal: sig });
    if ('rootfs' in r) emit({ type: 'built', what: 'base', cached: r.cached, ms: r.ms, files: r.files, bytes: r.bytes, debs: r.debs.length });
    else emit({ type: 'built', what, cached: r.cached, ms: r.ms, files: r.report.files, bytes: r.report.bytes, debs: r.debs.length });
    return r;
  }, signal);
  const base = built[0] as BuiltBase;
  const pkgs = built.slice(1) as BuiltPackage[];
  const jdk = pkgs.find((p) => p.spec.code === 'JDK17.0')!;
  await checkSharedLibraries({ rootfs: base.rootfs, pkgDir: jdk.dir, files: JDK_CORE_ELF, libDirs: ['lib', 'lib/server'], ...(signal ? { signal } : {}) });
  emit({ type: 'note', text: `the base satisfies every shared library of the JVM (${JDK_CORE_ELF.length} binaries checked with the base's own loader)` });
  if (jdk.finished) emit({ type: 'note', text: `JDK17.0 ${jdk.finished}` });
  const buildMs = performance.now() - t0;

  // ── 2. serve and publish ──────────────────────────────────────────────────────────────────
  const t1 = performance.now();
  emit({ type: 'section', title: 'Serve an OCI layout and publish the packages' });
  const layout = join(work, 'layout');
  const tokenFile = join(work, 'token');
  await ensureToken(tokenFile);
  const upstream = new LayoutUpstream({ dir: layout });
  let server: ServeProcess | undefined;
  let keep = false;
  try {
    const baseMarkerFile = join(work, 'base', 'published.json');
    const baseMarker = await readMarker<{ key: string } & PushedBase>(baseMarkerFile);
    const baseNow = await upstream.getManifest(DEMO_BASE_IMAGE.repository, DEMO_BASE_IMAGE.tag);
    let pushed: PushedBase;
    // Pushed again when the tree changed, the tag moved, or it was pushed before bases were seekable (no TOC).
    const basePublished = !(baseMarker?.key === base.key && baseMarker.tocDigest !== undefined && baseNow?.digest === baseMarker.manifestDigest);
    if (basePublished) {
      pushed = await pushBaseImage({ rootfs: base.rootfs, upstream, ...DEMO_BASE_IMAGE, tmpDir: work, ...(signal ? { signal } : {}) });
      await writeMarker(baseMarkerFile, { key: base.key, ...pushed });
    } else {
      pushed = baseMarker!;
    }
    emit({ type: 'published', what: 'base', image: pushed.image, manifestDigest: pushed.manifestDigest, layerSize: pushed.size, cached: !basePublished });

    const cliEnv: Record<string, string> = {};
    const cli = async (args: string[], show = true): Promise<CliCall> => {
      if (show) emit({ type: 'command', args });
      const call = await callCli(args, {
        entry,
        env: cliEnv,
        ...(show ? { onOutput: (stream, text) => emit({ type: 'output', stream, text }) } : {}),
        ...(signal ? { signal } : {}),
      });
      if (call.code !== 0) throw stepFailed(call);
      return call;
    };

    const serveArgs = ['--root', join(work, 'server'), 'serve', '--host', '127.0.0.1', '--port', '0', '--layout', layout, '--token-file', tokenFile, '--base', `${DEMO_BASE_IMAGE.repository}:${DEMO_BASE_IMAGE.tag}`];
    emit({ type: 'command', args: serveArgs });
    server = await startServeProcess({ entry, args: serveArgs, logFile: join(work, 'server.log'), detached: options.keepServer ?? false, ...(signal ? { signal } : {}) });
    emit({ type: 'note', text: `server pid ${server.pid} listening on ${server.url} (log: ${server.logFile})` });
    Object.assign(cliEnv, { HOSTPULL_SERVER: server.host, HOSTPULL_ROOT: join(work, 'client') });
    emit({ type: 'env', vars: { ...cliEnv } });

    const published: PublishedPackage[] = [];
    for (const pkg of pkgs) {
      const cached = await alreadyPublished(work, upstream, pkg);
      if (cached) {
        published.push(cached);
        emit({ type: 'published', what: pkg.spec.code, image: cached.image, manifestDigest: cached.manifestDigest, layerSize: cached.layerSize, cached: true });
        // The catalog lives in the layout too, so it normally survived; register only if not.
        if (!(await registeredAsExpected(server.host, pkg, cached.manifestDigest, signal))) await cli(catalogAddArgs(pkg, tokenFile));
        continue;
      }
      await cli(publishArgs(pkg, layout, tokenFile));
      const now = await describePublished(upstream, pkg, false);
      await rememberPublished(work, pkg, now);
      published.push(now);
    }
    await cli(['catalog', 'ls']);
    const publishMs = performance.now() - t1;

    // ── 3. the host side ────────────────────────────────────────────────────────────────────
    const t2 = performance.now();
    emit({ type: 'section', title: 'Run composites on a fresh host store' });
    const client = join(work, 'client');
    const unmounted = await unmountBelow(client, signal);
    if (unmounted.length > 0) emit({ type: 'note', text: `unmounted ${unmounted.length} mount(s) an interrupted run left under ${client}` });
    await rm(client, { recursive: true, force: true });
    emit({ type: 'note', text: `client store ${client} reset, so every layer below is fetched by this run` });

    const mvn = await cli(['run', 'JDK17.0-MVN3.8', '--', 'mvn', '-v']);
    // Maven colours its banner through jansi even into a pipe; the banner we report is plain text.
    const banner = /Apache Maven 3\.8\.\d+[^\n]*/.exec(stripAnsi(mvn.stdout))?.[0];
    if (!banner) throw stepFailed(mvn, 'did not print the "Apache Maven 3.8.x" banner');

    const pullCall = await cli(['pull', 'GO1.19-JDK17.0', '--json'], false);
    emit({ type: 'command', args: pullCall.args });
    const pull = JSON.parse(pullCall.stdout) as PullResult;
    const owners = new Map<string, string>([[pushed.layerDigest, 'base'], ...published.map((p) => [p.layerDigest, p.code] as [string, string])]);
    const layers: PulledLayer[] = pull.layers.map((l) => ({ digest: l.digest, owner: owners.get(l.digest) ?? '?', size: l.size, fetched: !l.hit, fetchedBytes: l.fetchedBytes }));
    emit({ type: 'pull-layers', layers });
    const goLayer = published.find((p) => p.code === 'GO1.19')!.layerDigest;
    const fetched = layers.filter((l) => l.fetched).map((l) => l.digest);
    if (pull.layerMisses !== 1 || fetched.length !== 1 || fetched[0] !== goLayer) {
      throw stepFailed(pullCall, `fetched ${fetched.length} layers (${fetched.join(', ') || 'none'}); expected only the GO1.19 layer ${goLayer}`);
    }

    const go = await cli(['run', 'GO1.19-JDK17.0', '--', 'go', 'version']);
    if (!/go version go1\.19/.test(go.stdout)) throw stepFailed(go, 'did not print "go version go1.19…"');

    const statsText = await cli(['stats']);
    const statsJson = JSON.parse((await cli(['stats', '--json'], false)).stdout) as DemoResult['stats']['json'];
    const runMs = performance.now() - t2;

    keep = options.keepServer ?? false;
    return {
      work,
      server: { url: server.url, host: server.host, pid: server.pid, kept: keep, logFile: server.logFile },
      base: { ...base, ...pushed, published: basePublished },
      packages: pkgs.map((p, i) => ({ prefix: p.spec.prefix, dir: p.dir, files: p.report.files, bytes: p.report.bytes, debs: p.debs, built: !p.cached, ...published[i]! })),
      maven: { stdout: mvn.stdout, banner },
      goPull: { manifestDigest: pull.manifestDigest, layerHits: pull.layerHits, layerMisses: pull.layerMisses, bytesFetched: pull.bytesFetched, bytesReused: pull.bytesReused, layers },
      go: { stdout: go.stdout },
      stats: { text: statsText.stdout, json: statsJson },
      timings: { buildMs, publishMs, runMs, totalMs: performance.now() - t0 },
    };
  } finally {
    if (server && !keep) await server.stop();
    await upstream.close();
    // `hostpull run` cleans up after itself; this catches a run killed halfway.
    await unmountBelow(join(work, 'client')).catch(() => undefined);
  }
}
