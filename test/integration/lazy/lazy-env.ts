/**
 * Shared setup of the lazy-pulling tests: a real registry, `hostpull serve` on it with a base
 * image, and packages published by `hostpull publish` with small spans (64 KiB) so that a layer
 * has many of them.
 */
import type { ChildProcess } from 'node:child_process';
import { chmod, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runCli } from '../../helpers/cli.js';
import type { TestDaemon } from '../daemon/daemon-process.js';
import { spawnServe } from '../../helpers/serve-cli.js';
import { baseFiles, buildLayer, pushImage } from '../../helpers/fixtures.js';
import { startRegistry, type TestRegistry } from '../../helpers/registry.js';
import { noise } from '../../helpers/noise.js';
import { makeTempDir, removeTempDir } from '../../helpers/tmp.js';

export { noise };

export interface LazyEnv {
  registry: TestRegistry;
  server: ChildProcess;
  /** `127.0.0.1:PORT` of hostpull serve. */
  serverHost: string;
  work: string;
  /** Published package code → its layer digest and TOC digest. */
  published: Map<string, { layerDigest: string; tocDigest: string; size: number }>;
  close(): Promise<void>;
}

const TOKEN = 'lazy-test-token-0123456789';

/** A package of startLazyEnv: the size of its `lib/big.bin`, and optionally of its launcher. */
export type ToolShape = number | { bigBytes: number; scriptBytes: number };

/**
 * A package tree under `dir`: `bin/<name>` prints a greeting and a small file, and `lib/big.bin`
 * (`bigBytes` of incompressible noise, so many spans) is there to be mostly not read. With
 * `scriptBytes`, the launcher exits after its greeting and is padded to about that size with
 * comment lines the shell never reads.
 */
export async function writeTool(dir: string, name: string, shape: ToolShape): Promise<void> {
  const { bigBytes, scriptBytes } = typeof shape === 'number' ? { bigBytes: shape, scriptBytes: 0 } : shape;
  await mkdir(join(dir, 'bin'), { recursive: true });
  await mkdir(join(dir, 'lib'), { recursive: true });
  await writeFile(join(dir, 'lib', 'small.txt'), `${name} small file\n`);
  await writeFile(join(dir, 'lib', 'big.bin'), noise(bigBytes, name));
  const prefix = `/opt/${name}`;
  const padding = scriptBytes > 0 ? `exit 0\n${(noise(scriptBytes, `${name}-script`).toString('base64').match(/.{1,76}/g) ?? []).map((l) => `# ${l}\n`).join('')}` : '';
  await writeFile(join(dir, 'bin', name), `#!/bin/sh\necho "${name} says hi"\ncat ${prefix}/lib/small.txt\n${padding}`);
  await chmod(join(dir, 'bin', name), 0o755);
}

/** The daemon's one lazy-layer FUSE helper: its PID (checked to be the daemon's child) and the name of its mount dir under `<root>/lazy/mnt`. */
export async function lazyHelperOf(d: TestDaemon, root: string): Promise<{ pid: number; dir: string }> {
  const helperDirs = await readdir(join(root, 'lazy', 'mnt'));
  if (helperDirs.length !== 1) throw new Error(`expected one lazy helper under ${root}, found ${helperDirs.join(', ') || 'none'}`);
  const pid = Number(helperDirs[0]!.split('-')[0]);
  // Only a PID this test started (through its daemon): the helper is the daemon's child.
  const ppid = Number((await readFile(`/proc/${pid}/stat`, 'utf8')).replace(/^.*\) /s, '').split(' ')[1]);
  if (ppid !== d.child.pid) throw new Error(`process ${pid} is not the daemon's lazy helper (its parent is ${ppid})`);
  return { pid, dir: helperDirs[0]! };
}

/**
 * Kills a test daemon and its lazy-layer FUSE helper with -9 at once, as a node losing both would:
 * nobody unmounts the helper's mounts, which then answer "transport endpoint is not connected".
 * Returns the name of the helper's mount dir under `<root>/lazy/mnt`.
 */
export async function killDaemonAndLazyHelper(d: TestDaemon, root: string): Promise<string> {
  const helper = await lazyHelperOf(d, root);
  process.kill(helper.pid, 'SIGKILL');
  d.child.kill('SIGKILL');
  await d.exited;
  await new Promise((r) => setTimeout(r, 200));
  return helper.dir;
}

export async function startLazyEnv(tools: Record<string, ToolShape>): Promise<LazyEnv> {
  const registry = await startRegistry();
  const work = await makeTempDir('lazy');
  let server: ChildProcess | undefined;
  try {
    await pushImage(registry.url, 'pkg/base', 'latest', [buildLayer(baseFiles())], { env: ['PATH=/usr/sbin:/usr/bin:/sbin:/bin'], cmd: ['/bin/sh'] });
    await writeFile(join(work, 'token'), `${TOKEN}\n`);
    const started = await spawnServe(['--root', join(work, 'server')], ['--upstream', registry.url, '--base', 'pkg/base:latest', '--token-file', join(work, 'token'), '--cache-ttl', '1s']);
    server = started.child;
    const s = server;
    const serverUrl = started.url;
    const published = new Map<string, { layerDigest: string; tocDigest: string; size: number }>();
    for (const [code, shape] of Object.entries(tools)) {
      const name = code.replace(/[0-9.]+$/, '').toLowerCase();
      const src = join(work, 'src', code);
      await writeTool(src, name, shape);
      const r = await runCli([
        '--root', join(work, 'publisher'), '--server', serverUrl,
        'publish', src, '--code', code, '--prefix', `/opt/${name}`, '--path-add', `/opt/${name}/bin`,
        '--upstream', registry.url, '--token-file', join(work, 'token'), '--span-size', '64K', '--json',
      ]);
      if (r.code !== 0) throw new Error(`publish ${code} failed: ${r.stderr}`);
      const j = JSON.parse(r.stdout) as { layerDigest: string; tocDigest: string; size: number };
      published.set(code, { layerDigest: j.layerDigest, tocDigest: j.tocDigest, size: j.size });
    }
    const env: LazyEnv = {
      registry,
      server,
      serverHost: new URL(serverUrl).host,
      work,
      published,
      async close() {
        if (s.exitCode === null) {
          const exited = new Promise((r) => s.once('exit', r));
          s.kill('SIGTERM');
          await exited;
        }
        await registry.stop();
        await removeTempDir(work);
      },
    };
    return env;
  } catch (err) {
    server?.kill('SIGKILL');
    await registry.stop();
    await removeTempDir(work);
    throw err;
  }
}
