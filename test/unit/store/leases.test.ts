import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ContentStore } from '../../../src/store/content-store.js';
import { isAlive } from '../../../src/util/index.js';
import { useTempDir } from '../../helpers/tmp.js';

const REPO = fileURLToPath(new URL('../../../', import.meta.url));

function deadPid(): number {
  const r = spawnSync('true');
  return r.pid!;
}

describe('Leases in one process', () => {
  const tmp = useTempDir('store-leases');
  let store: ContentStore;
  beforeEach(async () => {
    store = await ContentStore.open(await tmp(), { reconcile: false });
  });
  afterEach(() => store.close());

  it('runs work once for two concurrent calls with the same key', async () => {
    let result: string | undefined;
    let runs = 0;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const options = {
      done: () => result,
      work: async () => {
        runs++;
        await gate;
        result = 'fetched';
        return result;
      },
    };
    const a = store.leases.run('blob:k', options);
    const b = store.leases.run('blob:k', options);
    release();
    expect(await Promise.all([a, b])).toEqual(['fetched', 'fetched']);
    expect(runs).toBe(1);
    // The lease row is gone once the holder finished.
    expect(store.db.prepare('SELECT COUNT(*) AS n FROM leases').get()).toEqual({ n: 0 });
  });

  it('lets the waiter do the work when the holder failed', async () => {
    let result: string | undefined;
    let runs = 0;
    const options = {
      done: () => result,
      work: async () => {
        runs++;
        if (runs === 1) throw new Error('transfer broke');
        result = 'second try';
        return result;
      },
    };
    const [a, b] = await Promise.allSettled([store.leases.run('blob:k', options), store.leases.run('blob:k', options)]);
    expect(a).toMatchObject({ status: 'rejected', reason: { message: 'transfer broke' } });
    expect(b).toEqual({ status: 'fulfilled', value: 'second try' });
    expect(runs).toBe(2);
  });

  it('runs different keys independently', async () => {
    const seen: string[] = [];
    await Promise.all(['a', 'b'].map((k) => store.leases.run(k, { done: () => undefined, work: async () => void seen.push(k) })));
    expect(seen.sort()).toEqual(['a', 'b']);
  });

  it('takes over a lease held by a dead process', async () => {
    const pid = deadPid();
    expect(isAlive(pid)).toBe(false);
    const now = Date.now();
    store.db.prepare('INSERT INTO leases (key, pid, token, acquired_at, heartbeat_at) VALUES (?, ?, ?, ?, ?)').run('blob:k', pid, 'dead-token', now, now);
    expect(store.leases.liveKeys().has('blob:k')).toBe(false);
    const out = await store.leases.run('blob:k', { done: () => undefined, work: async () => 'taken over', pollMs: 5 });
    expect(out).toBe('taken over');
  });

  it('waits while a live process holds the lease, then returns its result', async () => {
    const now = Date.now();
    // Our parent is alive and its heartbeat is fresh: the lease is respected.
    store.db.prepare('INSERT INTO leases (key, pid, token, acquired_at, heartbeat_at) VALUES (?, ?, ?, ?, ?)').run('blob:k', process.ppid, 'other', now, now);
    expect(store.leases.liveKeys().has('blob:k')).toBe(true);
    let checks = 0;
    let result: string | undefined;
    let sawEnoughChecks!: () => void;
    const polled = new Promise<void>((r) => (sawEnoughChecks = r));
    let worked = false;
    const running = store.leases.run('blob:k', {
      done: () => {
        if (++checks === 4) sawEnoughChecks();
        return result;
      },
      work: async () => {
        worked = true;
        return 'ours';
      },
      pollMs: 5,
    });
    await polled;
    expect(worked).toBe(false);
    // The other holder finishes: its result appears, then its row goes.
    result = 'theirs';
    store.db.prepare('DELETE FROM leases WHERE key = ?').run('blob:k');
    expect(await running).toBe('theirs');
    expect(worked).toBe(false);
  });

  it('stops waiting when its signal is aborted', async () => {
    const now = Date.now();
    store.db.prepare('INSERT INTO leases (key, pid, token, acquired_at, heartbeat_at) VALUES (?, ?, ?, ?, ?)').run('blob:k', process.ppid, 'other', now, now);
    const controller = new AbortController();
    const running = store.leases.run('blob:k', { done: () => undefined, work: async () => 'never', signal: controller.signal, pollMs: 5 });
    controller.abort(new Error('cancelled'));
    await expect(running).rejects.toThrow();
  });
});

describe('Leases across processes', () => {
  const tmp = useTempDir('store-leases-xproc');
  const children: ChildProcess[] = [];
  afterEach(() => {
    for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  });

  it('runs work once when four processes need the same key at once', async () => {
    const dir = await tmp();
    // The children run the current sources: bundle src/store once (esbuild ships with vitest's
    // vite) instead of relying on a dist/ build that may be stale; node_modules is linked so the
    // bundle's external imports (better-sqlite3, pino) resolve.
    await build({
      entryPoints: [join(REPO, 'src/store/index.ts')],
      bundle: true,
      platform: 'node',
      format: 'esm',
      packages: 'external',
      outfile: join(dir, 'store.mjs'),
      logLevel: 'silent',
    });
    await symlink(join(REPO, 'node_modules'), join(dir, 'node_modules'));
    const script = join(dir, 'child.mjs');
    await writeFile(
      script,
      `import { appendFileSync, existsSync, writeFileSync } from 'node:fs';
       import { ContentStore } from './store.mjs';
       const [root, log, marker] = process.argv.slice(2);
       const store = await ContentStore.open(root, { reconcile: false });
       process.stdout.write('ready\\n');
       await new Promise((r) => process.stdin.once('data', r));
       const out = await store.leases.run('blob:sha256:shared', {
         done: () => (existsSync(marker) ? 'found' : undefined),
         work: async () => {
           appendFileSync(log, process.pid + '\\n');
           await new Promise((r) => setTimeout(r, 150));
           writeFileSync(marker, 'done');
           return 'worked';
         },
         pollMs: 10,
       });
       store.close();
       process.stdout.write(out + '\\n');
       process.stdin.destroy();
      `,
    );
    const root = join(dir, 'root');
    (await ContentStore.open(root)).close(); // migrate once up front
    const log = join(dir, 'work.log');
    const marker = join(dir, 'marker');

    const outputs = Array.from({ length: 4 }, () => {
      const child = spawn(process.execPath, [script, root, log, marker], { cwd: dir, stdio: ['pipe', 'pipe', 'pipe'] });
      children.push(child);
      let stdout = '';
      let stderr = '';
      child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
      child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
      const ready = new Promise<void>((resolve, reject) => {
        const onData = () => {
          if (stdout.includes('ready\n')) resolve();
        };
        child.stdout!.on('data', onData);
        child.once('exit', (code) => reject(new Error(`child exited ${code} before ready: ${stderr}`)));
      });
      const exited = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) =>
        child.once('exit', (code) => resolve({ code, stdout, stderr })),
      );
      return { child, ready, exited };
    });
    await Promise.all(outputs.map((o) => o.ready));
    for (const o of outputs) o.child.stdin!.write('go\n');
    const results = await Promise.all(outputs.map((o) => o.exited));

    for (const r of results) expect(r, r.stderr).toMatchObject({ code: 0 });
    const lines = results.map((r) => r.stdout.trim().split('\n').pop());
    expect(lines.filter((l) => l === 'worked')).toHaveLength(1);
    expect(lines.filter((l) => l === 'found')).toHaveLength(3);
    expect((await readFile(log, 'utf8')).trim().split('\n')).toHaveLength(1);
  });
});
