/**
 * Taking over a stale `--name` (its run was killed) while other runs claim it too: real store,
 * one process per claimant. Each step that removes a link can be made to wait in a chosen process
 * (the way `strace -e inject=unlink:delay_enter=…` widens it), so the interleaving that let two
 * runs both get the name happens on every run of the test, not by luck.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, readlink, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { afterEach, describe, expect, it } from 'vitest';
import { ContentStore } from '../../../src/store/content-store.js';
import { useTempDir } from '../../helpers/tmp.js';

const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const STALE = 'deadbeef0000';

/**
 * A claimant: opens the store, records its container `id` (owned by itself, as a run does), says
 * `ready`, and on `go` claims (or releases) the name `web`, printing `won`, `released` or the error
 * code. It keeps its container alive until its stdin closes. With a delay, the first unlink or
 * rename of a name link (sync or async) waits that long first.
 */
const CHILD = `
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
const [root, id, verb, delayMs] = process.argv.slice(2);
const delay = Number(delayMs);
if (delay > 0) {
  let armed = true;
  const hit = (p) => armed && String(p).includes('/container-names/') && !(armed = false);
  const wait = () => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, delay);
  for (const name of ['unlink', 'rename']) {
    const sync = fs[name + 'Sync'];
    fs[name + 'Sync'] = (p, ...rest) => (hit(p) && wait(), sync(p, ...rest));
    const async = fs.promises[name];
    fs.promises[name] = async (p, ...rest) => {
      if (hit(p)) await new Promise((r) => setTimeout(r, delay));
      return async(p, ...rest);
    };
  }
  syncBuiltinESMExports();
}
const { ContentStore, claimContainerName, releaseContainerNames } = await import('./names.mjs');
const store = await ContentStore.open(root, { reconcile: false });
if (verb === 'claim') store.mounts.record(id, [], { ownerPid: process.pid });
process.stdout.write('ready\\n');
await new Promise((r) => process.stdin.once('data', r));
try {
  if (verb === 'claim') await claimContainerName(store, 'web', id);
  else await releaseContainerNames(store, id);
  process.stdout.write(verb === 'claim' ? 'won\\n' : 'released\\n');
} catch (err) {
  process.stdout.write((err.code ?? err.message) + '\\n');
}
await new Promise((r) => process.stdin.once('end', r).resume());
store.close();
`;

describe('claimContainerName across processes', () => {
  const tmp = useTempDir('container-names');
  const children: ChildProcess[] = [];
  afterEach(() => {
    for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  });

  /** A store whose name `web` points at `holder`, and the script the claimants run. */
  async function setup(holder: string): Promise<{ dir: string; root: string; script: string }> {
    const dir = await tmp();
    // The current sources, bundled once (as test/unit/store/leases.test.ts does).
    await writeFile(
      join(dir, 'entry.ts'),
      `export { ContentStore } from '${REPO}src/store/index.ts';\nexport { claimContainerName, releaseContainerNames } from '${REPO}src/container/container-names.ts';\n`,
    );
    await build({ entryPoints: [join(dir, 'entry.ts')], bundle: true, platform: 'node', format: 'esm', packages: 'external', outfile: join(dir, 'names.mjs'), logLevel: 'silent' });
    await symlink(join(REPO, 'node_modules'), join(dir, 'node_modules'));
    const script = join(dir, 'child.mjs');
    await writeFile(script, CHILD);
    const root = join(dir, 'root');
    const store = await ContentStore.open(root);
    await mkdir(store.layout.containerNamesDir, { recursive: true });
    await symlink(holder, join(store.layout.containerNamesDir, 'web'));
    store.close();
    return { dir, root, script };
  }

  function start(dir: string, script: string, args: string[]) {
    const child = spawn(process.execPath, [script, ...args], { cwd: dir, stdio: ['pipe', 'pipe', 'pipe'] });
    children.push(child);
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const lines = () => stdout.trim().split('\n');
    const until = async (pred: () => boolean, what: string) => {
      const deadline = Date.now() + 30_000;
      while (!pred()) {
        if (Date.now() > deadline || child.exitCode !== null) throw new Error(`${what}: ${stdout} ${stderr}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    return {
      id: args[1]!,
      ready: () => until(() => lines()[0] === 'ready', 'never ready'),
      go: () => child.stdin!.write('go\n'),
      result: async () => {
        await until(() => lines().length > 1, 'no result');
        return lines()[1]!;
      },
      end: () => new Promise<void>((r) => (child.exitCode !== null ? r() : (child.once('exit', () => r()), child.stdin!.end()))),
    };
  }

  const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

  it('three claimants of a stale name: the one that judged it stale first cannot take it from the one that got it meanwhile', async () => {
    const { dir, root, script } = await setup(STALE);
    // a judges the holder stale, then stalls 1.5 s before removing the link; b and c come meanwhile.
    const a = start(dir, script, [root, 'aaaaaaaaaaaa', 'claim', '1500']);
    const b = start(dir, script, [root, 'bbbbbbbbbbbb', 'claim', '0']);
    const c = start(dir, script, [root, 'cccccccccccc', 'claim', '0']);
    await Promise.all([a, b, c].map((x) => x.ready()));
    a.go();
    await pause(300);
    b.go();
    await pause(300);
    c.go();
    const results = await Promise.all([a, b, c].map((x) => x.result()));
    const winners = [a, b, c].filter((_, i) => results[i] === 'won');
    expect(results.filter((r) => r !== 'won')).toEqual(['NAME_IN_USE', 'NAME_IN_USE']);
    expect(winners).toHaveLength(1);
    expect(await readlink(join(root, 'container-names', 'web'))).toBe(winners[0]!.id);
    await Promise.all([a, b, c].map((x) => x.end()));
  });

  it('releasing a stale container\'s name never removes it from the run that took it over meanwhile', async () => {
    const { dir, root, script } = await setup(STALE);
    // The cleanup of the stale container reads its name, then stalls before removing it.
    const cleanup = start(dir, script, [root, STALE, 'release', '1500']);
    const claimant = start(dir, script, [root, 'cccccccccccc', 'claim', '0']);
    await Promise.all([cleanup, claimant].map((x) => x.ready()));
    cleanup.go();
    await pause(300);
    claimant.go();
    expect(await claimant.result()).toBe('won');
    expect(await cleanup.result()).toBe('released');
    expect(await readlink(join(root, 'container-names', 'web'))).toBe(claimant.id);
    await Promise.all([cleanup, claimant].map((x) => x.end()));
  });

  it('five claimants of a stale name at once: exactly one gets it', async () => {
    const { dir, root, script } = await setup(STALE);
    const all = Array.from({ length: 5 }, (_, i) => start(dir, script, [root, `${i}`.repeat(12), 'claim', '0']));
    await Promise.all(all.map((x) => x.ready()));
    for (const x of all) x.go();
    const results = await Promise.all(all.map((x) => x.result()));
    expect(results.filter((r) => r === 'won')).toHaveLength(1);
    expect(results.filter((r) => r === 'NAME_IN_USE')).toHaveLength(4);
    expect(await readlink(join(root, 'container-names', 'web'))).toBe(all[results.indexOf('won')]!.id);
    await Promise.all(all.map((x) => x.end()));
  });
});
