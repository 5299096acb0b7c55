/**
 * GC on a real store filled by real pulls: under a size budget only unused layers go; a layer
 * recorded as mounted survives with its image; what was evicted is fetched again (and only
 * that); rootfs of dead owners are released at start.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isHostpullError } from '../../../src/errors.js';
import { collectGarbage } from '../../../src/gc/collect-garbage.js';
import { cleanStaleMounts } from '../../../src/container/stale-mounts.js';
import type { Digest } from '../../../src/oci/digest.js';
import { ContentStore } from '../../../src/store/content-store.js';
import { runCli } from '../../helpers/cli.js';
import { pushFixtureSet, type FixtureSet } from '../../helpers/fixtures.js';
import { startProxy } from '../../helpers/proxy.js';
import { blobRequests, startRegistry, type TestRegistry } from '../../helpers/registry.js';
import { makeTempDir, removeTempDir } from '../../helpers/tmp.js';

let registry: TestRegistry;
let fixtures: FixtureSet;
const temps: string[] = [];
const A = 'JDK11.0-MVN3.8';
const B = 'JDK11.0-GRD7.0';

beforeAll(async () => {
  registry = await startRegistry();
  fixtures = await pushFixtureSet(registry.url, { codes: ['JDK11.0', 'MVN3.8', 'GRD7.0'], composites: [A, B] });
});

afterAll(async () => {
  await registry?.stop();
  for (const d of temps) await removeTempDir(d);
});

async function pulledRoot(): Promise<string> {
  const dir = await makeTempDir('gc');
  temps.push(dir);
  const root = join(dir, 'root');
  for (const tag of [A, B]) {
    const r = await runCli(['--root', root, '--server', registry.host, 'pull', tag, '--no-daemon']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  }
  return root;
}

/** One pulled root shared by the tests that leave its content in place (pulls cost seconds). */
let shared: Promise<string> | undefined;
function sharedRoot(): Promise<string> {
  shared ??= pulledRoot();
  return shared;
}

function diffIds(codes: string[]): Digest[] {
  return [fixtures.base.diffId, ...codes.map((c) => fixtures.packages[c]!.diffId)] as Digest[];
}

describe('gc under a size budget', () => {
  it('evicts only unused layers; the mounted rootfs keeps its layers and its image; evicted layers are fetched again', async () => {
    const root = await pulledRoot();
    const store = await ContentStore.open(root);
    try {
      store.mounts.record('ctr-a', diffIds(['JDK11.0', 'MVN3.8']), { ownerPid: process.pid });
      expect(store.layers.list()).toHaveLength(4);
    } finally {
      store.close();
    }

    const gc = await runCli(['--root', root, 'gc', '--max-store-size', '0', '--min-age', '0', '--json', '--no-daemon']);
    expect(gc.stderr).toBe('');
    expect(gc.code).toBe(0);
    const report = JSON.parse(gc.stdout);
    expect(report).toMatchObject({ dryRun: false, maxStoreSize: 0, layersRemoved: 1, imagesRemoved: [`${registry.host}/hostpull:${B}`], overBudget: true, skipped: 0 });

    const after = await ContentStore.open(root);
    const grd = fixtures.packages['GRD7.0']!;
    try {
      expect(after.layers.list().map((l) => l.diffId).sort()).toEqual(diffIds(['JDK11.0', 'MVN3.8']).sort());
      for (const l of after.layers.list()) expect(existsSync(after.layers.dir(l))).toBe(true);
      expect(after.blobs.has(grd.digest as Digest)).toBe(false);
      expect(existsSync(after.blobs.path(grd.digest as Digest))).toBe(false);
      expect(after.images.list().map((i) => i.reference)).toEqual([`${registry.host}/hostpull:${A}`]);
      expect(after.blobs.has(fixtures.images[B]!.manifestDigest as Digest)).toBe(false);
      expect(after.blobs.has(fixtures.images[A]!.manifestDigest as Digest)).toBe(true);
    } finally {
      after.close();
    }

    // The mounted image is still complete: a pull is up to date. B fetches GRD7.0 and its own
    // manifest and config again, nothing else.
    const upToDate = await runCli(['--root', root, '--server', registry.host, 'pull', A, '--json', '--no-daemon']);
    expect(JSON.parse(upToDate.stdout).upToDate).toBe(true);
    const mark = await registry.mark();
    const again = await runCli(['--root', root, '--server', registry.host, 'pull', B, '--json', '--no-daemon']);
    expect(again.code).toBe(0);
    const served = blobRequests(await registry.since(mark)).map((e) => e.path.split('/blobs/')[1]);
    expect(served.sort()).toEqual([grd.digest, fixtures.images[B]!.configDigest].sort());

    // Released, every layer is collectable.
    const s = await ContentStore.open(root);
    try {
      expect(s.mounts.release('ctr-a')).toBe(true);
      const r = await collectGarbage(s, { maxStoreSize: 0, graceMs: 0 });
      expect(r.overBudget).toBe(false);
      expect(r.bytesAfter).toBe(0);
      expect(s.layers.list()).toEqual([]);
      expect(s.blobs.list()).toEqual([]);
      expect(s.images.list()).toEqual([]);
    } finally {
      s.close();
    }
  });

  it('without a budget keeps everything an image references, and the default min-age keeps fresh content', async () => {
    const root = await sharedRoot();
    const plain = await runCli(['--root', root, 'gc', '--min-age', '0', '--json', '--no-daemon']);
    expect(JSON.parse(plain.stdout)).toMatchObject({ layersRemoved: 0, blobsRemoved: 0, imagesRemoved: [] });
    const fresh = await runCli(['--root', root, 'gc', '--max-store-size', '1k', '--json', '--no-daemon']);
    expect(JSON.parse(fresh.stdout)).toMatchObject({ layersRemoved: 0, blobsRemoved: 0, overBudget: true });
    const usage = await runCli(['--root', root, 'gc', '--max-store-size', 'lots', '--no-daemon']);
    expect(usage.code).toBe(2);
  });
});

describe('rmi', () => {
  it('removes the named images (all or none); gc then frees only the layers no remaining image lists', async () => {
    const root = await pulledRoot();
    const refA = `${registry.host}/hostpull:${A}`;
    const refB = `${registry.host}/hostpull:${B}`;

    const unknown = await runCli(['--root', root, '--server', registry.host, 'rmi', A, 'NOPE1.0', '--no-daemon']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain(`not in the store: ${registry.host}/hostpull:NOPE1.0; nothing was removed`);
    const images = async () => (JSON.parse((await runCli(['--root', root, 'images', '--json', '--no-daemon'])).stdout) as Array<{ reference: string }>).map((i) => i.reference);
    expect((await images()).sort()).toEqual([refA, refB].sort());

    // A short composite tag, and the same image by its full name: removed once.
    const rmi = await runCli(['--root', root, '--server', registry.host, 'rmi', A, refA, '--json', '--no-daemon']);
    expect(rmi.stderr).toBe('');
    expect(JSON.parse(rmi.stdout)).toEqual([{ reference: refA, manifestDigest: fixtures.images[A]!.manifestDigest }]);
    expect(await images()).toEqual([refB]);

    // MVN3.8 was A's alone; base and JDK11.0 are B's too. Within --min-age nothing goes.
    const kept = JSON.parse((await runCli(['--root', root, 'gc', '--json', '--no-daemon'])).stdout);
    expect(kept).toMatchObject({ layersRemoved: 0 });
    const gc = JSON.parse((await runCli(['--root', root, 'gc', '--min-age', '0', '--json', '--no-daemon'])).stdout);
    expect(gc).toMatchObject({ layersRemoved: 1, imagesRemoved: [] });
    const store = await ContentStore.open(root);
    try {
      expect(store.layers.list().map((l) => l.diffId).sort()).toEqual(diffIds(['JDK11.0', 'GRD7.0']).sort());
      expect(store.blobs.has(fixtures.images[A]!.manifestDigest as Digest)).toBe(false);
    } finally {
      store.close();
    }
    const again = await runCli(['--root', root, '--server', registry.host, 'pull', B, '--json', '--no-daemon']);
    expect(JSON.parse(again.stdout).upToDate).toBe(true);
  });
});

describe('mount records', () => {
  it('refuse a layer that is not unpacked, and stale owners are released at start', async () => {
    const root = await sharedRoot();
    const store = await ContentStore.open(root);
    try {
      let err: unknown;
      try {
        store.mounts.record('ctr-x', [`sha256:${'0'.repeat(64)}` as Digest]);
      } catch (e) {
        err = e;
      }
      expect(isHostpullError(err, 'LAYER_MISSING')).toBe(true);
      expect(store.mounts.list()).toEqual([]);

      const dead = spawnSync('true').pid!; // has exited: its pid names no live process of that start time
      const layers = diffIds(['JDK11.0']);
      store.mounts.record('ctr-dead', layers, { ownerPid: dead });
      store.mounts.record('ctr-live', layers, { ownerPid: process.pid });
      store.mounts.record('ctr-orchestrated', layers);
      await mkdir(join(store.layout.containersDir, 'ctr-dead', 'rootfs'), { recursive: true });
      const unmounted: string[] = [];
      const report = await cleanStaleMounts(store, { unmountAllUnder: (dir) => (unmounted.push(dir), []) });
      expect(report).toEqual({ released: ['ctr-dead'], kept: [], failed: [] });
      expect(unmounted).toEqual([join(store.layout.containersDir, 'ctr-dead')]);
      expect(existsSync(join(store.layout.containersDir, 'ctr-dead'))).toBe(false);
      expect(store.mounts.list().map((m) => m.id)).toEqual(['ctr-live', 'ctr-orchestrated']);
      expect(store.mounts.list()[0]!.diffIds).toEqual([...layers].sort());
    } finally {
      store.close();
    }
  });
});

describe('gc beside a pull in flight', () => {
  it('keeps the layers the pull has committed, though no image lists them yet and --min-age is 0', async () => {
    const dir = await makeTempDir('gc-inflight');
    temps.push(dir);
    const root = join(dir, 'root');
    const proxy = await startProxy(registry.url);
    let pull: ReturnType<typeof runCli> | undefined;
    try {
      // Maven's blob crawls, so the base and the JDK are committed seconds before the image is.
      const slow = fixtures.packages['MVN3.8']!;
      proxy.setFault((req) => (req.method === 'GET' && req.path.endsWith(`/blobs/${slow.digest}`) ? { throttleBytesPerSec: 48 * 1024 } : undefined));
      pull = runCli(['--root', root, '--server', proxy.host, 'pull', A, '--no-daemon']);
      const early = diffIds(['JDK11.0']);
      await until(async () => {
        const store = await ContentStore.open(root, { reconcile: false }).catch(() => undefined);
        try {
          return store !== undefined && early.every((d) => store.layers.get(d));
        } finally {
          store?.close();
        }
      }, 'the base and JDK layers to be committed');
      const stillPulling = proxy.requests.some((r) => r.path.endsWith(`/blobs/${slow.digest}`) && r.closedAt === undefined);
      expect(stillPulling).toBe(true);

      const gc = await runCli(['--root', root, 'gc', '--min-age', '0', '--json', '--no-daemon']);
      expect(gc.stderr).toBe('');
      expect(JSON.parse(gc.stdout)).toMatchObject({ layersRemoved: 0, blobsRemoved: 0 });

      const pulled = await pull;
      expect(pulled.stderr).toBe('');
      expect(pulled.code).toBe(0);
      const store = await ContentStore.open(root);
      try {
        for (const d of diffIds(['JDK11.0', 'MVN3.8'])) {
          const row = store.layers.get(d);
          expect(row, d).toBeDefined();
          expect(existsSync(store.layers.dir(row!))).toBe(true);
        }
        // Nothing of the finished pull is held any more.
        expect(store.pullHolds.liveDigests().size).toBe(0);
      } finally {
        store.close();
      }
    } finally {
      // A failed assertion must not leave the pull writing into a directory being removed.
      await pull?.catch(() => undefined);
      await proxy.close();
    }
  });
});

async function until(check: () => Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
