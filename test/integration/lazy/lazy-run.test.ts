/**
 * `hostpull run --lazy` through real parts: CNCF registry (its access log), `hostpull serve`,
 * FUSE (hostpull's own server in the helper process), kernel overlayfs and runc.
 */
import { createHash } from 'node:crypto';
import { appendFile, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { collectChild, runCli, spawnCli } from '../../helpers/cli.js';
import type { AccessEntry } from '../../helpers/registry.js';
import { listMountsUnder } from '../../../src/rootfs/index.js';
import { parseTocBlob, spansFor, type Digest } from '../../../src/oci/index.js';
import { noise, startLazyEnv, type LazyEnv } from './lazy-env.js';
import { treeListing } from './tree-listing.js';

let env: LazyEnv;

beforeAll(async () => {
  env = await startLazyEnv({ 'TOOLA1.0': 3 * 1024 * 1024, 'TOOLB1.0': 1024 * 1024, 'TOOLC1.0': 2 * 1024 * 1024, 'TOOLX1.0': { bigBytes: 1024 * 1024, scriptBytes: 512 * 1024 } });
}, 240_000);

afterAll(async () => {
  await env?.close();
});

/** Bytes of successful GETs of one blob in registry access-log entries, and whether all were partial (206). */
function blobBytes(entries: AccessEntry[], digest: string): { bytes: number; gets: number; ranged: boolean } {
  const gets = entries.filter((e) => e.method === 'GET' && e.path.endsWith(`/blobs/${digest}`) && e.status < 400);
  return { bytes: gets.reduce((n, e) => n + e.bytes, 0), gets: gets.length, ranged: gets.every((e) => e.status === 206) };
}

async function inspectLayers(root: string, ref: string): Promise<Array<{ digest: string; unpackedAt: string | null }>> {
  const r = await runCli(['--root', root, '--server', env.serverHost, 'inspect', ref]);
  expect(r.code).toBe(0);
  return (JSON.parse(r.stdout) as { layers: Array<{ digest: string; unpackedAt: string | null }> }).layers;
}

/**
 * `hostpull run --lazy` on node `root`, its background pull 5 s away: how it ended, and what the
 * registry served up to a second after its first output (well before that pull).
 */
async function runLazyWatched(root: string, ref: string, command: string[]): Promise<{ r: Awaited<ReturnType<typeof collectChild>>; soon: AccessEntry[] }> {
  const mark = await env.registry.mark();
  const child = spawnCli(['--root', root, '--server', env.serverHost, 'run', '--lazy', '--lazy-background-delay', '5s', ref, '--', ...command]);
  let soon: Promise<AccessEntry[]> | undefined;
  child.stdout!.once('data', () => (soon = new Promise((r) => setTimeout(r, 1000)).then(() => env.registry.since(mark))));
  const r = await collectChild(child, { timeoutMs: 120_000 });
  return { r, soon: (await soon) ?? [] };
}

/** The spans of the file whose path ends with `suffix`, from the TOC node `root` stored for `code`, and their compressed bytes. */
async function fileSpans(root: string, code: string, suffix: string): Promise<{ first: number; last: number; bytes: number }> {
  const { tocDigest } = env.published.get(code)!;
  const tocFile = join(root, 'blobs', 'sha256', tocDigest.slice(7, 9), tocDigest.slice(7));
  const toc = parseTocBlob(await readFile(tocFile), tocDigest as Digest, code);
  const entry = toc.entries.find((e) => e.path.endsWith(suffix))!;
  const { first, last } = spansFor(toc.spans, entry.dataOffset!, entry.size);
  return { first, last, bytes: toc.spans.slice(first, last + 1).reduce((n, sp) => n + sp.cs, 0) };
}

describe('hostpull run --lazy', () => {
  it('runs before the layers arrived, fetching a fraction of them by Range first; the completed layer equals a whole unpack', async () => {
    const root = join(env.work, 'node1');
    const toolA = env.published.get('TOOLA1.0')!;
    const mark = await env.registry.mark();
    const child = spawnCli(['--root', root, '--server', env.serverHost, 'run', '--lazy', '--lazy-background-delay', '5s', 'TOOLA1.0-TOOLB1.0', '--', '/bin/sh', '-c', 'toola; toolb']);
    let beforeOutput: Promise<AccessEntry[]> | undefined;
    child.stdout!.once('data', () => (beforeOutput = env.registry.since(mark)));
    const r = await collectChild(child, { timeoutMs: 120_000 });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('toola says hi\ntoola small file\ntoolb says hi\ntoolb small file\n');

    // Before the first output: only Range requests, for a small part of the blob.
    const early = blobBytes(await beforeOutput!, toolA.layerDigest);
    expect(early.gets).toBeGreaterThan(0);
    expect(early.ranged).toBe(true);
    expect(early.bytes).toBeLessThan(toolA.size * 0.2);
    // In all: the blob once (spans cached by reads are not fetched again by the background pull).
    const all = blobBytes(await env.registry.since(mark), toolA.layerDigest);
    expect(all.ranged).toBe(true);
    expect(all.bytes).toBe(toolA.size);

    // The background pull unpacked the layer: byte-identical to a whole pull's unpack.
    const whole = join(env.work, 'node1-whole');
    expect((await runCli(['--root', whole, '--server', env.serverHost, 'pull', 'TOOLA1.0-TOOLB1.0'])).code).toBe(0);
    const lazyLayers = await inspectLayers(root, 'TOOLA1.0-TOOLB1.0');
    const wholeLayers = await inspectLayers(whole, 'TOOLA1.0-TOOLB1.0');
    expect(lazyLayers.map((l) => l.digest)).toEqual(wholeLayers.map((l) => l.digest));
    for (const [i, l] of lazyLayers.entries()) {
      expect(l.unpackedAt).not.toBeNull();
      expect(await treeListing(l.unpackedAt!)).toBe(await treeListing(wholeLayers[i]!.unpackedAt!));
    }

    // Nothing stays mounted, the span caches of completed layers are gone, and stats say how each layer came.
    expect(listMountsUnder(join(root, 'lazy'))).toEqual([]);
    expect(await readdir(join(root, 'lazy', 'spans')).catch(() => [])).toEqual([]);
    const stats = await runCli(['--root', root, 'stats', '--json', '--no-daemon']);
    const figures = JSON.parse(stats.stdout) as {
      layerMisses: number;
      bytesFetched: number;
      bytesFetchedLazily: number;
      layerArrivals: Array<{ blobDigest: string; arrival: string; reason: string | null; bytesLazy: number }>;
    };
    const arrivals = figures.layerArrivals;
    expect(arrivals.find((a) => a.blobDigest === toolA.layerDigest)).toMatchObject({ arrival: 'lazy-completed', reason: null, bytesLazy: toolA.size });
    const base = arrivals.find((a) => a.reason?.includes('no table of contents'));
    expect(base).toMatchObject({ arrival: 'whole' });
    // The layers the run deferred to lazy pulling were misses, and what the helper fetched of
    // them counts as fetched.
    const deferred = arrivals.filter((a) => a.arrival !== 'whole');
    expect(figures.layerMisses).toBe(deferred.length + 1);
    expect(figures.bytesFetchedLazily).toBe(deferred.reduce((n, a) => n + a.bytesLazy, 0));
    expect(figures.bytesFetched).toBeGreaterThan(figures.bytesFetchedLazily);
  }, 180_000);

  it("an executable's first read fetches all of it: a launcher that exits at its third line has every span of it fetched", async () => {
    const root = join(env.work, 'node-exec');
    const toolX = env.published.get('TOOLX1.0')!;
    const { r, soon } = await runLazyWatched(root, 'TOOLX1.0', ['toolx']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('toolx says hi\ntoolx small file\n');

    const { first, last, bytes: launcherBytes } = await fileSpans(root, 'TOOLX1.0', 'bin/toolx');
    expect(last - first).toBeGreaterThan(4); // the shell reads the first of them only
    const early = blobBytes(soon, toolX.layerDigest);
    expect(early.ranged).toBe(true);
    expect(early.bytes).toBeGreaterThanOrEqual(launcherBytes);
    expect(early.bytes).toBeLessThan(launcherBytes + 3 * 70 * 1024); // and not lib/big.bin, beyond a span or two it shares
  }, 120_000);

  it('a data file read here and there, in three of its spans, has all of them fetched', async () => {
    const root = join(env.work, 'node-scattered');
    const toolX = env.published.get('TOOLX1.0')!;
    const big = noise(1024 * 1024, 'toolx');
    // Pieces of 4 KiB from the start, the middle and the end of big.bin (64 KiB spans).
    const skips = [2, 130, 250];
    const script = skips.map((k) => `dd if=/opt/toolx/lib/big.bin bs=4096 skip=${k} count=1 2>/dev/null | sha256sum`).join('; ');
    const { r, soon } = await runLazyWatched(root, 'TOOLX1.0', ['/bin/sh', '-c', script]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
    expect(r.stdout.split('\n').filter(Boolean).map((l) => l.split(' ')[0])).toEqual(skips.map((k) => sha(big.subarray(k * 4096, (k + 1) * 4096))));

    const { first, last, bytes: fileBytes } = await fileSpans(root, 'TOOLX1.0', 'lib/big.bin');
    expect(last - first).toBeGreaterThan(10);
    // Well before the background pull: all of big.bin, not three or four spans of it.
    const early = blobBytes(soon, toolX.layerDigest);
    expect(early.ranged).toBe(true);
    expect(early.bytes).toBeGreaterThanOrEqual(fileBytes);
  }, 120_000);

  it('learns the spans the first start read as the image\'s prefetch list, which the server hands to a second node', async () => {
    const root = join(env.work, 'node2');
    const toolB = env.published.get('TOOLB1.0')!.layerDigest;
    const first = await runCli(['--root', root, '--server', env.serverHost, 'run', '--lazy', 'TOOLB1.0', '--', 'toolb']);
    expect(first.code).toBe(0);
    expect(first.stdout).toBe('toolb says hi\ntoolb small file\n');
    // Learned on this node: the first start's spans, in first-read order (the launcher is in span 0).
    const { default: Database } = await import('better-sqlite3');
    const db = new Database(join(root, 'hostpull.db'), { readonly: true });
    const rows = db.prepare('SELECT image, blob_digest AS b, spans AS s FROM prefetch_lists').all() as Array<{ image: string; b: string; s: string }>;
    db.close();
    const mine = rows.find((r) => r.b === toolB)!;
    const spans = JSON.parse(mine.s) as number[];
    expect(spans[0]).toBe(0);
    // Offered to the server, which keeps it for the composite.
    const served = await fetch(`http://${env.serverHost}/hostpull/v1/prefetch/${mine.image}`);
    expect(served.status).toBe(200);
    expect(await served.json()).toEqual({ version: 1, layers: { [toolB]: spans } });
    // A second node, with an empty store, fetches those spans first. Its --root is relative: the
    // FUSE helper, the overlay and the runtime are handed absolute paths all the same.
    const second = await runCli(['--root', 'node2b', '--server', env.serverHost, '--log-level', 'info', 'run', '--lazy', 'TOOLB1.0', '--', 'toolb'], { cwd: env.work });
    expect(second.code).toBe(0);
    expect(second.stdout).toBe('toolb says hi\ntoolb small file\n');
    // Said by the FUSE helper, in the text of the run that started it: once, though the list
    // reaches it twice (with the view's mount or as soon as it came, and after the overlay).
    const started = [...second.stderr.matchAll(new RegExp(`^hostpull-lazy: info: learned prefetch started layer=\\S*${toolB} prefetch=${spans.length}$`, 'gm'))];
    expect(started).toHaveLength(1);
    // A list naming anything but the composite's own seekable layers is refused.
    const bad = await fetch(`http://${env.serverHost}/hostpull/v1/prefetch/${mine.image}`, { method: 'PUT', body: JSON.stringify({ version: 1, layers: { [env.published.get('TOOLA1.0')!.layerDigest]: [1] } }) });
    expect(bad.status).toBe(400);
  }, 120_000);

  it('a corrupted span in the registry is EIO to the reader, the background pull refuses the blob, and nothing corrupt is cached', async () => {
    const toolC = env.published.get('TOOLC1.0')!;
    // Flip one byte in the middle of the stored blob (inside lib/big.bin's data).
    const hex = toolC.layerDigest.slice('sha256:'.length);
    const file = join(env.registry.dir, 'data', 'docker', 'registry', 'v2', 'blobs', 'sha256', hex.slice(0, 2), hex, 'data');
    const blob = await readFile(file);
    const at = Math.floor(blob.length / 2);
    blob[at] = blob[at]! ^ 0xff;
    await writeFile(file, blob);

    const root = join(env.work, 'node3');
    const r = await runCli(['--root', root, '--server', env.serverHost, 'run', '--lazy', '--lazy-background-delay', '0s', '--lazy-fetch-attempts', '2', 'TOOLC1.0', '--', '/bin/sh', '-c', 'toolc; cat /opt/toolc/lib/big.bin > /dev/null; echo "cat: $?"']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('toolc says hi\ntoolc small file\n');
    expect(r.stdout).toMatch(/Input\/output error|cat: 1/);
    expect(r.stdout).toContain('cat: 1');
    expect(r.stderr).toContain('lazy read failed: EIO to the reader');
    expect(r.stderr).toContain('DIGEST_MISMATCH');
    // The background pull refused it: the layer is not unpacked, its stats say why.
    const layers = await inspectLayers(root, 'TOOLC1.0');
    expect(layers.find((l) => l.digest === toolC.layerDigest)!.unpackedAt).toBeNull();
    const stats = JSON.parse((await runCli(['--root', root, 'stats', '--json', '--no-daemon'])).stdout) as { layerArrivals: Array<{ blobDigest: string; arrival: string; reason: string; bytesLazy: number }> };
    expect(stats.layerArrivals.find((a) => a.blobDigest === toolC.layerDigest)).toMatchObject({ arrival: 'lazy' });
    expect(stats.layerArrivals.find((a) => a.blobDigest === toolC.layerDigest)!.reason).toMatch(/not completed: .*(DIGEST_MISMATCH|LAZY_FETCH_FAILED)/);
    // What its reads fetched before the refusal came over the network all the same.
    expect(stats.layerArrivals.find((a) => a.blobDigest === toolC.layerDigest)!.bytesLazy).toBeGreaterThan(0);
    // Only verified spans are cached: each file matches its TOC hash, and the corrupted one is absent.
    const cacheDir = join(root, 'lazy', 'spans', hex);
    const cached = await readdir(cacheDir);
    const toc = JSON.parse((await import('node:zlib')).gunzipSync(await readFile(join(root, 'blobs', 'sha256', toolC.tocDigest.slice(7, 9), toolC.tocDigest.slice(7)))).toString()) as {
      spans: Array<{ c: number; cs: number; sha256: string }>;
    };
    const bad = toc.spans.findIndex((s) => s.c <= at && at < s.c + s.cs);
    expect(cached).not.toContain(String(bad));
    for (const name of cached) {
      expect(createHash('sha256').update(await readFile(join(cacheDir, name))).digest('hex')).toBe(toc.spans[Number(name)]!.sha256);
    }
    await appendFile(join(env.work, 'corrupted'), toolC.layerDigest);
  }, 180_000);

  it('a second node copies a file that the first start read whole, and the kernel reads the copy (FUSE passthrough)', async () => {
    const expected = createHash('sha256').update(noise(3 * 1024 * 1024, 'toola')).digest('hex');
    // The first start of TOOLA1.0 reads all of big.bin: its spans become the image's prefetch list.
    const first = await runCli(['--root', join(env.work, 'node5a'), '--server', env.serverHost, 'run', '--lazy', 'TOOLA1.0', '--', 'sha256sum', '/opt/toola/lib/big.bin']);
    expect(first.code).toBe(0);
    expect(first.stdout.split(' ')[0]).toBe(expected);

    // A second node fetches them first: at big.bin's open they are all on their way, so the open
    // waits for them and hands the kernel a verified copy, beside the helper's mount.
    const root = join(env.work, 'node5b');
    const child = spawnCli(['--root', root, '--server', env.serverHost, 'run', '--lazy', '--lazy-background-delay', '10m', 'TOOLA1.0', '--', '/bin/sh', '-c', 'trap "exit 0" TERM; sha256sum /opt/toola/lib/big.bin; while :; do sleep 1; done']);
    const result = collectChild(child, { timeoutMs: 60_000 });
    const printed = await Promise.race([
      new Promise<string>((resolve) => child.stdout!.once('data', (b: Buffer | string) => resolve(b.toString()))),
      result.then((r) => `exited ${r.code} before printing: ${r.stderr}`),
    ]);
    try {
      expect(printed.split(' ')[0]).toBe(expected);
      const [helperDir] = await readdir(join(root, 'lazy', 'mnt'));
      const dir = join(root, 'lazy', 'mnt', helperDir!);
      const copies = (await readdir(dir)).filter((n) => n.endsWith('.copies'));
      const files = (await Promise.all(copies.map(async (c) => (await readdir(join(dir, c))).map((f) => join(dir, c, f))))).flat();
      const sums = await Promise.all(files.map(async (f) => createHash('sha256').update(await readFile(f)).digest('hex')));
      expect(sums).toEqual([expected]);
    } finally {
      child.kill('SIGTERM');
      await result;
    }
    // Removed with the mounts when the run ends.
    expect(await readdir(join(root, 'lazy', 'mnt'))).toEqual([]);

    // Another node whose container never opens big.bin: the learned list covers all of it, so
    // the helper copies it anyway, ahead of an open that may come.
    const root2 = join(env.work, 'node5c');
    const idle = spawnCli(['--root', root2, '--server', env.serverHost, 'run', '--lazy', '--lazy-background-delay', '10m', 'TOOLA1.0', '--', '/bin/sh', '-c', 'trap "exit 0" TERM; echo up; while :; do sleep 1; done']);
    const idleResult = collectChild(idle, { timeoutMs: 60_000 });
    try {
      const up = await Promise.race([
        new Promise<string>((resolve) => idle.stdout!.once('data', (b: Buffer | string) => resolve(b.toString()))),
        idleResult.then((r) => `exited ${r.code} before printing: ${r.stderr}`),
      ]);
      expect(up).toBe('up\n');
      const copied = async () => {
        const mnt = join(root2, 'lazy', 'mnt');
        const files: string[] = [];
        for (const h of await readdir(mnt).catch(() => [])) {
          for (const c of (await readdir(join(mnt, h))).filter((n) => n.endsWith('.copies'))) {
            files.push(...(await readdir(join(mnt, h, c))).filter((f) => !f.endsWith('.tmp')).map((f) => join(mnt, h, c, f)));
          }
        }
        return files;
      };
      let files: string[] = [];
      for (let i = 0; i < 200 && files.length === 0; i++) {
        files = await copied();
        if (files.length === 0) await new Promise((r) => setTimeout(r, 50));
      }
      expect(await Promise.all(files.map(async (f) => createHash('sha256').update(await readFile(f)).digest('hex')))).toEqual([expected]);
    } finally {
      idle.kill('SIGTERM');
      await idleResult;
    }
  }, 120_000);

  it('kill -9 of a lazy run while its container runs: the next run leaves no stale mount and works', async () => {
    const root = join(env.work, 'node4');
    const child = spawnCli(['--root', root, '--server', env.serverHost, 'run', '--lazy', '--lazy-background-delay', '10m', 'TOOLB1.0', '--', '/bin/sh', '-c', 'toolb; sleep 600']);
    const exited = new Promise((r) => child.once('exit', r));
    await new Promise<void>((resolve) => child.stdout!.once('data', () => resolve()));
    expect(listMountsUnder(join(root, 'lazy')).map((m) => m.fsType)).toEqual(['fuse.hostpull']);
    child.kill('SIGKILL');
    await exited;
    const next = await runCli(['--root', root, '--server', env.serverHost, 'run', '--lazy', 'TOOLB1.0', '--', 'toolb']);
    expect(next.stderr).toBe('');
    expect(next.code).toBe(0);
    expect(next.stdout).toBe('toolb says hi\ntoolb small file\n');
    expect(listMountsUnder(join(root, 'lazy'))).toEqual([]);
    expect(listMountsUnder(join(root, 'containers'))).toEqual([]);
  }, 120_000);
});
