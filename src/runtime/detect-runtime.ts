import { createHash } from 'node:crypto';
import { accessSync, constants, existsSync, statSync, type BigIntStats } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { release, tmpdir } from 'node:os';
import { basename, delimiter, isAbsolute, join, resolve } from 'node:path';
import { errnoCode, errorText, HostpullError, isHostpullError } from '../errors.js';
import type { Logger } from '../log.js';
import { isAlive } from '../util/index.js';
import { buildRuntimeSpec } from './build-runtime-spec.js';
import { execRuntime, tail } from './exec-runtime.js';
import { runContainer } from './run-container.js';
import type { RuntimeInfo } from './runtime-info.js';
import { writeBundle } from './write-bundle.js';

export interface DetectOptions {
  /**
   * Directory for the probe-verdict cache file (`hostpull-runtime-probe.json`), normally the
   * runtime state root. Default: none, every call probes.
   */
  stateRoot?: string;
  /** Ignore cached verdicts and probe again. Default false. */
  reprobe?: boolean;
  signal?: AbortSignal;
  logger?: Logger;
}

/** Probe order when no runtime is named: runc first (crun 1.8.1 fails on hybrid cgroups here). */
const DEFAULT_ORDER = ['runc', 'crun'] as const;
/** Searched after $PATH: runtimes live in sbin, which a non-root PATH often lacks. */
const EXTRA_DIRS = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];
const CACHE_FILE = 'hostpull-runtime-probe.json';
/** Host directories bound read-only into the probe's empty rootfs so it can run the host's `true`. */
const PROBE_BINDS = ['/bin', '/sbin', '/usr', '/lib', '/lib64', '/lib32'];

interface Verdict {
  ok: boolean;
  reason?: string;
  at: string;
  /** What `--version` said when the verdict was made. */
  version: string;
}

/** A runtime's executable and its file (which keys its cached verdict, see cacheKey). */
interface Located {
  path: string;
  file: BigIntStats;
}

function locate(nameOrPath: string): Located | undefined {
  const executable = (path: string): Located | undefined => {
    try {
      accessSync(path, constants.X_OK);
      const file = statSync(path, { bigint: true });
      return file.isFile() ? { path, file } : undefined;
    } catch {
      return undefined;
    }
  };
  if (nameOrPath.includes('/')) return executable(resolve(nameOrPath));
  const dirs = [...(process.env.PATH ?? '').split(delimiter).filter((d) => isAbsolute(d)), ...EXTRA_DIRS];
  for (const d of dirs) {
    const found = executable(join(d, nameOrPath));
    if (found) return found;
  }
  return undefined;
}

function nameOf(path: string): RuntimeInfo['name'] {
  const base = basename(path);
  if (base.startsWith('runc')) return 'runc';
  if (base.startsWith('crun')) return 'crun';
  throw new HostpullError('RUNTIME_UNSUPPORTED', `${path}: only runc and crun are supported`);
}

async function versionOf(path: string, name: string, signal?: AbortSignal): Promise<string> {
  const r = await execRuntime({ path }, undefined, ['--version'], signal ? { signal } : {});
  const m = /version\s+(\S+)/.exec(r.stdout);
  if (r.code !== 0 || !m) {
    throw new HostpullError('RUNTIME_UNUSABLE', `${name} (${path}) --version failed: ${tail(r.stderr || r.stdout) || `exit ${r.code}`}`);
  }
  return m[1]!;
}

/**
 * The verdict depends on the binary, the kernel/cgroup setup and whether we run as root. The
 * binary is known by its file (device, inode, size, modification time), which changes when a
 * package upgrade replaces it: a cached verdict then needs no `--version` run either, which every
 * `hostpull run` waited for (a fork and exec of runc, ~6 ms of a ~190 ms run of a stored image).
 */
function cacheKey({ path, file }: Located): string {
  return createHash('sha256')
    .update(`${path}\0${file.dev}:${file.ino}:${file.size}:${file.mtimeNs}\0${release()}\0${process.getuid?.() ?? ''}`)
    .digest('hex')
    .slice(0, 32);
}

async function readCache(stateRoot: string): Promise<Record<string, Verdict>> {
  try {
    return JSON.parse(await readFile(join(stateRoot, CACHE_FILE), 'utf8')) as Record<string, Verdict>;
  } catch (err) {
    if (errnoCode(err) === 'ENOENT' || err instanceof SyntaxError) return {};
    throw err;
  }
}

async function writeCache(stateRoot: string, key: string, verdict: Verdict): Promise<void> {
  await mkdir(stateRoot, { recursive: true, mode: 0o700 });
  const cache = await readCache(stateRoot);
  cache[key] = verdict;
  // Write-then-rename: two concurrent probes may each write; the last complete file wins.
  const tmp = join(stateRoot, `.${CACHE_FILE}.${process.pid}.tmp`);
  await writeFile(tmp, JSON.stringify(cache, null, 2) + '\n', { mode: 0o600 });
  await rename(tmp, join(stateRoot, CACHE_FILE));
}

const PROBE_PREFIX = 'hostpull-probe-';
/** A probe takes a fraction of a second: one this old belongs to nobody, whatever its pid says (pids are reused). */
const ABANDONED_PROBE_MS = 3600_000;

/**
 * The directories of probes whose process was killed during them (kill -9 of a `hostpull run` on
 * its first start): nothing else would ever remove them from the temporary directory. One of a
 * live process is its own, unless it is too old to be a probe; one of another user's is not ours
 * to remove (the rm fails and is ignored).
 */
async function removeAbandonedProbes(now = Date.now()): Promise<void> {
  for (const name of await readdir(tmpdir()).catch(() => [] as string[])) {
    if (!name.startsWith(PROBE_PREFIX)) continue;
    const pid = /^\d+(?=-)/.exec(name.slice(PROBE_PREFIX.length))?.[0];
    const dir = join(tmpdir(), name);
    const st = await stat(dir).catch(() => undefined);
    if (!st?.isDirectory()) continue;
    const young = now - st.mtimeMs < ABANDONED_PROBE_MS;
    // Named without a pid (an older hostpull): only its age can tell.
    if (young && (pid === undefined || isAlive(Number(pid)))) continue;
    await rm(dir, { recursive: true, force: true }).catch(() => undefined);
  }
}

/**
 * Starts a real throwaway container: `--version` succeeding says nothing about whether the
 * runtime works with this kernel's cgroup layout (crun 1.8.1 prints its version, then refuses
 * every container on hybrid cgroups). The rootfs is an empty directory with the host's /usr,
 * /bin and /lib bound read-only, so the probe needs no image and works on any distribution.
 */
async function probe(info: RuntimeInfo, opts: DetectOptions): Promise<Omit<Verdict, 'version'>> {
  await removeAbandonedProbes();
  // The pid in the name tells a later probe whether this one's process is still alive.
  const dir = await mkdtemp(join(tmpdir(), `${PROBE_PREFIX}${process.pid}-`));
  const id = `hostpull-probe-${process.pid}-${Date.now().toString(36)}`;
  try {
    const rootfs = join(dir, 'rootfs');
    await mkdir(rootfs);
    const mounts = PROBE_BINDS.filter((p) => existsSync(p)).map((p) => ({ source: p, destination: p, options: ['rbind', 'ro'] }));
    const rootless = process.getuid?.() !== 0;
    const spec = buildRuntimeSpec(
      {
        imageConfig: { architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } },
        rootfsPath: rootfs,
        args: ['true'],
        containerId: id,
        mounts,
      },
      { rootless },
    );
    const bundle = join(dir, 'bundle');
    await writeBundle(bundle, spec);
    const r = await runContainer({
      runtime: info,
      bundleDir: bundle,
      containerId: id,
      stateRoot: join(dir, 'state'),
      stdio: 'pipe',
      forwardSignals: false,
      ...(opts.signal ? { signal: opts.signal } : {}),
      ...(opts.logger ? { logger: opts.logger } : {}),
    });
    if (r.exitCode === 0) return { ok: true, at: new Date().toISOString() };
    return { ok: false, reason: `probe container exited ${r.exitCode}: ${tail(r.stderr ?? '')}`, at: new Date().toISOString() };
  } catch (err) {
    if (isHostpullError(err, 'ABORTED')) throw err;
    const reason = isHostpullError(err, 'RUNTIME_FAILED') ? err.message : `${info.name}: ${(err as Error).message}`;
    return { ok: false, reason, at: new Date().toISOString() };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function check(nameOrPath: string, opts: DetectOptions): Promise<RuntimeInfo> {
  const located = locate(nameOrPath);
  if (!located) throw new HostpullError('RUNTIME_NOT_FOUND', `${nameOrPath}: no such executable in PATH or ${EXTRA_DIRS.join(', ')}`);
  const { path } = located;
  const name = nameOf(path);
  // Verdicts of an older build are under keys of another kind (path and version): never found here.
  const key = cacheKey(located);
  const cached = opts.stateRoot && !opts.reprobe ? (await readCache(opts.stateRoot))[key] : undefined;
  let verdict: Verdict;
  let info: RuntimeInfo;
  if (cached) {
    verdict = cached;
    info = { name, path, version: cached.version };
  } else {
    info = { name, path, version: await versionOf(path, name, opts.signal) };
    verdict = { ...(await probe(info, opts)), version: info.version };
    opts.logger?.debug({ runtime: info, verdict }, 'probed OCI runtime');
    // Only a runtime that worked is remembered. A failure may pass (a full /tmp, a cgroup
    // hiccup, a spec a later hostpull fixes): remembered, it would refuse every run until the
    // runtime's binary changed. A runtime that keeps failing costs its probe (~100 ms) per run.
    if (opts.stateRoot && verdict.ok) await writeCache(opts.stateRoot, key, verdict);
  }
  if (!verdict.ok) {
    throw new HostpullError('RUNTIME_UNUSABLE', `${name} ${info.version} (${path}) cannot run containers here: ${verdict.reason ?? 'unknown'}`, {
      hint: 'pick another runtime with --runtime, or fix the runtime setup',
      details: { runtime: path, version: info.version, probedAt: verdict.at },
    });
  }
  return info;
}

/**
 * Finds a working OCI runtime. With `preferred` (a name or a path, from `--runtime`), that one
 * or an error saying why it cannot be used; otherwise the first of runc, crun that really starts
 * a container here. A working runtime's verdict is cached in `stateRoot` per runtime binary (its
 * file), kernel and uid, so only the first call pays for the probe (~100 ms) and for asking the
 * version; a failing one is probed again at every call.
 */
export async function detectRuntime(preferred?: string, opts: DetectOptions = {}): Promise<RuntimeInfo> {
  if (preferred !== undefined) return check(preferred, opts);
  const reasons: string[] = [];
  for (const name of DEFAULT_ORDER) {
    try {
      return await check(name, opts);
    } catch (err) {
      if (isHostpullError(err, 'ABORTED')) throw err;
      reasons.push(errorText(err));
    }
  }
  throw new HostpullError('RUNTIME_NOT_FOUND', `no working OCI runtime: ${reasons.join('; ')}`, {
    hint: 'install runc (or crun), or name one with --runtime',
  });
}
