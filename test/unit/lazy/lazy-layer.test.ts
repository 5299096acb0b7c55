/**
 * The lazy layer without /dev/fuse: its FUSE handlers (STYLE: pure handler objects), the span
 * fetcher's verification, retries and bounds, and the tree built from a TOC. Spans come from a
 * real seekable layer built by publish's writer; the "registry" is an in-memory SpanSource.
 */
import { createHash } from 'node:crypto';
import { closeSync, existsSync, readFileSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { constants } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../../src/log.js';
import type { SeekableToc } from '../../../src/oci/seekable-toc.js';
import { buildLayerFile } from '../../../src/publish/build-layer.js';
import { LazyLayer } from '../../../src/lazy/lazy-layer.js';
import { LazyReader } from '../../../src/lazy/lazy-reader.js';
import { LazyTree } from '../../../src/lazy/lazy-tree.js';
import { SpanCache } from '../../../src/lazy/span-cache.js';
import { SpanFetcher, type SpanSource } from '../../../src/lazy/span-fetcher.js';
import { RetryPolicy, type RetryBudget } from '../../../src/registry/retry.js';
import { heldSteps } from '../../helpers/held-steps.js';
import { noise } from '../../helpers/noise.js';
import { useTempDir } from '../../helpers/tmp.js';

const E = constants.errno;

/** An in-memory registry for one blob: counts requests, and can corrupt, stall or fail them. */
class FakeSource implements SpanSource {
  readonly where = 'fake';
  requests: Array<[number, number]> = [];
  /** `corrupt` flips the first byte sent, `corrupt-last` the last one. */
  mode: 'ok' | 'corrupt' | 'corrupt-last' | 'stall' | 'fail' = 'ok';
  /** While set, answers wait for it (requests in flight can be counted). */
  gate: Promise<void> | undefined;
  /** Requests for bytes from these offsets wait for their promise (one request held, the others answered). */
  readonly gates = new Map<number, Promise<void>>();
  inFlight = 0;
  /** The registry client's retry policy, with the attempts of the fetch policy and short backoffs. */
  readonly #policy: RetryPolicy;
  constructor(
    readonly blob: Buffer,
    attempts = 3,
  ) {
    this.#policy = new RetryPolicy({ maxRetries: attempts - 1, baseDelayMs: 10, maxDelayMs: 20 });
  }
  retryBudget(signal: AbortSignal): RetryBudget {
    return this.#policy.begin('fake', { signal });
  }
  async fetchRange(start: number, end: number, signal: AbortSignal): Promise<Readable> {
    this.requests.push([start, end]);
    this.inFlight++;
    try {
      await this.gate;
      await this.gates.get(start);
    } finally {
      this.inFlight--;
    }
    if (this.mode === 'fail') throw Object.assign(new Error('connection refused'), { code: 'ECONNREFUSED' });
    const bytes = Buffer.from(this.blob.subarray(start, end + 1));
    if (this.mode === 'corrupt') bytes[0] = bytes[0]! ^ 1;
    if (this.mode === 'corrupt-last') bytes[bytes.length - 1] = bytes[bytes.length - 1]! ^ 1;
    if (this.mode === 'stall') {
      // Half the bytes, then nothing until aborted.
      const s = new PassThrough();
      s.write(bytes.subarray(0, bytes.length >> 1));
      signal.addEventListener('abort', () => s.destroy(signal.reason as Error), { once: true });
      return s;
    }
    return Readable.from([bytes.subarray(0, 100), bytes.subarray(100)]);
  }
}

/** The spans whose compressed bytes lie wholly within a request for blob bytes [start, end]. */
function spansIn(toc: SeekableToc, [start, end]: [number, number]): number[] {
  return toc.spans.flatMap((s, i) => (s.c >= start && s.c + s.cs - 1 <= end ? [i] : []));
}

/** The bytes of the local copy behind a passthrough fd (which this closes). */
function readCopy(fd: number | undefined): Buffer {
  expect(fd).toBeTypeOf('number');
  try {
    return readFileSync(fd!);
  } finally {
    closeSync(fd!);
  }
}

type Cb = (...args: unknown[]) => void;
function call<T extends unknown[]>(fn: (cb: Cb) => void): Promise<T> {
  return new Promise((resolve) => fn((...args: unknown[]) => resolve(args as T)));
}

describe('lazy layer (no /dev/fuse)', () => {
  const tmp = useTempDir('lazy-unit');

  /**
   * `scattered`: big.bin is fetched whole once reads touch three of its spans; `blocks`: it is
   * fetched by aligned blocks of four spans from then on (LazyReader's rules; off unless a test is
   * about them). `after`: lib/more.bin (300 kB) follows big.bin in the tar.
   */
  async function layer(opts: { attempts?: number; timeoutMs?: number; concurrency?: number; copies?: boolean; scattered?: boolean; blocks?: boolean; after?: boolean } = {}) {
    const dir = await tmp();
    const src = join(dir, 'src');
    await mkdir(join(src, 'bin'), { recursive: true });
    await mkdir(join(src, 'lib', 'empty-dir'), { recursive: true });
    await writeFile(join(src, 'bin', 'tool'), '#!/bin/sh\necho hi\n', { mode: 0o755 });
    await writeFile(join(src, 'lib', 'big.bin'), noise(700_000, 'big'));
    if (opts.after) await writeFile(join(src, 'lib', 'more.bin'), noise(300_000, 'more'));
    const { symlink } = await import('node:fs/promises');
    await symlink('../lib/big.bin', join(src, 'bin', 'big'));
    const built = await buildLayerFile({ dir: src, prefix: '/opt/t', outFile: join(dir, 'layer.tgz'), spanSize: 64 * 1024 });
    const blob = await readFile(join(dir, 'layer.tgz'));
    const attempts = opts.attempts ?? 2;
    const source = new FakeSource(blob, attempts);
    const cacheDir = join(dir, 'cache');
    const lazy = new LazyLayer(built.toc, {
      where: 'test layer',
      tree: {},
      source,
      cacheDir,
      fetch: { attempts, attemptTimeoutMs: opts.timeoutMs ?? 2000, ...(opts.concurrency ? { concurrency: opts.concurrency } : {}) },
      wholeFiles: { wholeScatteredMax: opts.scattered ? 1024 * 1024 : 0, regionSpans: opts.blocks ? 4 : 0 },
      logger: silentLogger(),
      ...(opts.copies ? { copiesDir: join(dir, 'copies') } : {}),
    });
    return { lazy, source, blob, toc: built.toc, cacheDir, copiesDir: join(dir, 'copies'), tar: gunzipSync(blob) };
  }

  it('copies a file whole for passthrough only when that fetches no span its reads would not', async () => {
    const { lazy, source, copiesDir } = await layer({ copies: true });
    const passthrough = lazy.handlers.passthrough!;
    // Too small to be worth a copy, a path that is not there, and a file whose spans are not here:
    // none is copied, and nothing is fetched for them.
    expect(await passthrough('/opt/t/bin/tool')).toBeUndefined();
    expect(await passthrough('/opt/t/nope')).toBeUndefined();
    expect(await passthrough('/opt/t/lib/big.bin')).toBeUndefined();
    expect(source.requests).toEqual([]);

    const node = lazy.tree.lookup('/opt/t/lib/big.bin')!;
    await lazy.reader.prefetch(lazy.reader.spansOf(node));
    const fd = await passthrough('/opt/t/lib/big.bin');
    expect(fd).toBeTypeOf('number');
    expect(readCopy(fd).equals(noise(700_000, 'big'))).toBe(true);
    expect(await readdir(copiesDir)).toEqual([String(node.ino)]);
    expect(lazy.stats().filesPassedThrough).toBe(1);
    await lazy.close();
    await expect(readdir(copiesDir)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('a copy is made of verified spans only: a corrupt span fails it and leaves no file behind', async () => {
    const { lazy, source, copiesDir } = await layer({ copies: true, attempts: 1 });
    const node = lazy.tree.lookup('/opt/t/lib/big.bin')!;
    // The spans are on their way (so the file is worth copying) when the registry turns bad.
    let open!: () => void;
    source.gate = new Promise<void>((resolve) => (open = resolve));
    const fetching = lazy.reader.prefetch(lazy.reader.spansOf(node)).catch((err: unknown) => err);
    await new Promise((r) => setTimeout(r, 20));
    source.mode = 'corrupt';
    const copy = lazy.handlers.passthrough!('/opt/t/lib/big.bin');
    open();
    await expect(copy).rejects.toMatchObject({ code: 'LAZY_FETCH_FAILED' });
    await fetching;
    expect(await readdir(copiesDir).catch(() => [])).toEqual([]);
    expect(lazy.stats().filesPassedThrough).toBe(0);
  });

  /** Polls `check` every 10 ms until it holds (at most 5 s). */
  async function until(check: () => Promise<boolean> | boolean): Promise<void> {
    for (let i = 0; i < 500 && !(await check()); i++) await new Promise((r) => setTimeout(r, 10));
    expect(await check()).toBe(true);
  }

  it('the learned prefetch copies the files it covers whole before their first open; the open takes the copy and counts the file as read', async () => {
    const { lazy, source, copiesDir } = await layer({ copies: true, after: true });
    const big = lazy.tree.lookup('/opt/t/lib/big.bin')!;
    const more = lazy.tree.lookup('/opt/t/lib/more.bin')!;
    const list = lazy.reader.spansOf(big);
    // more.bin (300 kB, worth a copy) lies partly outside the list: it is not copied ahead.
    expect(lazy.reader.spansOf(more).every((i) => list.includes(i))).toBe(false);
    await lazy.prefetchInOrder(list);
    await until(async () => (await readdir(copiesDir).catch(() => [])).includes(String(big.ino)));
    expect(await readdir(copiesDir)).toEqual([String(big.ino)]);
    // Copied ahead, not read: the read order (what a first start would learn) is still empty.
    expect(lazy.reader.readOrder()).toEqual([]);
    const requests = source.requests.length;
    const fd = await lazy.handlers.passthrough!('/opt/t/lib/big.bin');
    expect(readCopy(fd).equals(noise(700_000, 'big'))).toBe(true);
    // The open asked for nothing more, and counts all of big.bin as read, as a copy made at the open does.
    expect(source.requests.length).toBe(requests);
    expect(lazy.reader.readOrder()).toEqual(list);
    expect(lazy.stats().filesPassedThrough).toBe(1);
    expect(await lazy.handlers.passthrough!('/opt/t/lib/more.bin')).toBeUndefined();
    await lazy.close();
  });

  it('copies made ahead go one at a time in list order; an open of one still queued starts it at once', async () => {
    const { lazy, source, copiesDir } = await layer({ copies: true, after: true });
    const big = lazy.tree.lookup('/opt/t/lib/big.bin')!;
    const more = lazy.tree.lookup('/opt/t/lib/more.bin')!;
    const bigSpans = lazy.reader.spansOf(big);
    const moreSpans = lazy.reader.spansOf(more);
    // more.bin's spans are here; the registry holds the request for the rest of big.bin's.
    await lazy.reader.prefetch(moreSpans);
    let release!: () => void;
    source.gates.set(lazy.toc.spans[bigSpans[0]!]!.c, new Promise<void>((resolve) => (release = resolve)));
    // big.bin's spans first in the list: its copy goes first.
    void lazy.prefetchInOrder([...bigSpans, ...moreSpans.filter((i) => !bigSpans.includes(i))]);
    await until(() => source.inFlight === 1);
    await new Promise((r) => setTimeout(r, 50));
    // more.bin's copy waits behind big.bin's.
    expect(await readdir(copiesDir).catch(() => [])).toEqual([]);
    const fd = await lazy.handlers.passthrough!('/opt/t/lib/more.bin');
    expect(readCopy(fd).equals(noise(300_000, 'more'))).toBe(true);
    expect(await readdir(copiesDir)).toEqual([String(more.ino)]);
    release();
    await until(async () => (await readdir(copiesDir)).length === 2);
    expect((await readdir(copiesDir)).sort()).toEqual([String(big.ino), String(more.ino)].sort());
    await lazy.close();
  });

  it('a copy made ahead that fails (the registry is down) leaves the file to a copy at its open, once the registry is back', async () => {
    const { lazy, source, copiesDir } = await layer({ copies: true, attempts: 1 });
    const big = lazy.tree.lookup('/opt/t/lib/big.bin')!;
    source.mode = 'fail';
    await lazy.prefetchInOrder(lazy.reader.spansOf(big)).catch(() => undefined);
    await new Promise((r) => setTimeout(r, 50));
    expect(await readdir(copiesDir).catch(() => [])).toEqual([]);
    source.mode = 'ok';
    // Its spans are neither here nor on their way: the open copies nothing, and its reads are served.
    expect(await lazy.handlers.passthrough!('/opt/t/lib/big.bin')).toBeUndefined();
    await lazy.reader.prefetch(lazy.reader.spansOf(big));
    const fd = await lazy.handlers.passthrough!('/opt/t/lib/big.bin');
    expect(readCopy(fd).equals(noise(700_000, 'big'))).toBe(true);
    expect(await readdir(copiesDir)).toEqual([String(big.ino)]);
    await lazy.close();
  });

  it('a second learned list over a layer already prefetching asks only for the spans neither here nor on their way', async () => {
    const { lazy, source, toc } = await layer();
    const big = lazy.tree.lookup('/opt/t/lib/big.bin')!;
    const spans = lazy.reader.spansOf(big);
    await lazy.prefetchInOrder(spans.slice(0, 3));
    expect(lazy.prefetching).toBe(true);
    const asked = () => source.requests.flatMap((r) => spansIn(toc, r));
    expect(asked().sort((a, b) => a - b)).toEqual(spans.slice(0, 3));
    // The same list again (sent after the mount that carried it): nothing asked.
    await lazy.prefetchInOrder(spans.slice(0, 3));
    expect(asked()).toHaveLength(3);
    // Another image's list over the layer: only its new span.
    await lazy.prefetchInOrder([spans[1]!, spans[5]!]);
    expect(asked().sort((a, b) => a - b)).toEqual([...spans.slice(0, 3), spans[5]!]);
  });

  it('answers getattr, readdir, readlink and read from the TOC, fetching only the spans a read needs', async () => {
    const { lazy, source, toc } = await layer();
    const h = lazy.handlers;
    const [err, st] = await call<[number, { mode: number; size: number; uid: number }]>((cb) => h.getattr('/opt/t/bin/tool', cb));
    expect(err).toBe(0);
    expect(st.mode).toBe(0o100755);
    expect(st.size).toBe(18);
    expect((await call<[number]>((cb) => h.getattr('/opt/t/nope', cb)))[0]).toBe(-E.ENOENT);
    expect(await call((cb) => h.readdir('/opt/t', cb))).toEqual([0, ['bin', 'lib']]);
    expect(await call((cb) => h.readdir('/opt/t/lib', cb))).toEqual([0, ['big.bin', 'empty-dir']]);
    expect((await call<[number]>((cb) => h.readdir('/opt/t/bin/tool', cb)))[0]).toBe(-E.ENOTDIR);
    expect(await call((cb) => h.readlink('/opt/t/bin/big', cb))).toEqual([0, '../lib/big.bin']);
    expect(source.requests).toEqual([]);

    const [, fd] = await call<[number, number]>((cb) => h.open('/opt/t/bin/tool', 0, cb));
    expect((await call<[number]>((cb) => h.open('/opt/t/bin/tool', 1, cb)))[0]).toBe(-E.EROFS);
    const buf = Buffer.alloc(4096);
    const [n] = await call<[number]>((cb) => h.read('/opt/t/bin/tool', fd, buf, 4096, 0, cb));
    expect(buf.subarray(0, n).toString()).toBe('#!/bin/sh\necho hi\n');
    expect(source.requests).toHaveLength(1);
    expect(source.requests[0]![0]).toBe(0);

    // A read in the middle of big.bin: exactly the spans holding those bytes, fetched once.
    const entry = toc.entries.find((e) => e.path.endsWith('big.bin'))!;
    const [, fd2] = await call<[number, number]>((cb) => h.open('/opt/t/lib/big.bin', 0, cb));
    const big = Buffer.alloc(131072);
    const [m] = await call<[number]>((cb) => h.read('/opt/t/lib/big.bin', fd2, big, 131072, 300_000, cb));
    expect(m).toBe(131072);
    expect(big.equals(noise(700_000, 'big').subarray(300_000, 431_072))).toBe(true);
    const want = toc.spans.flatMap((s, i) => (s.u < entry.dataOffset! + 431_072 && s.u + s.us > entry.dataOffset! + 300_000 ? [i] : []));
    // The spans the requests covered (adjacent ones come in one request).
    const covered = (r: Array<[number, number]>) => r.flatMap(([c, end]) => toc.spans.flatMap((s, i) => (s.c >= c && s.c + s.cs - 1 <= end ? [i] : []))).sort((a, b) => a - b);
    expect(covered(source.requests.slice(1))).toEqual(want);
    await call<[number]>((cb) => h.read('/opt/t/lib/big.bin', fd2, big, 131072, 300_000, cb));
    expect(covered(source.requests.slice(1))).toEqual(want);
    // Past the end: 0 bytes.
    expect((await call<[number]>((cb) => h.read('/opt/t/lib/big.bin', fd2, big, 4096, 700_000, cb)))[0]).toBe(0);
    expect(lazy.reader.readOrder()).toEqual([0, ...want]);
  });

  it('never returns bytes of a span that does not match the TOC: EIO, and nothing unverified is cached', async () => {
    const { lazy, source, cacheDir, toc } = await layer();
    source.mode = 'corrupt';
    const [, fd] = await call<[number, number]>((cb) => lazy.handlers.open('/opt/t/lib/big.bin', 0, cb));
    const buf = Buffer.alloc(65536, 0xee);
    const [r] = await call<[number]>((cb) => lazy.handlers.read('/opt/t/lib/big.bin', fd, buf, 65536, 10, cb));
    expect(r).toBe(-E.EIO);
    expect(buf.every((b) => b === 0xee)).toBe(true);
    // A digest mismatch is not retried: each span was asked for once (FakeSource corrupts the
    // first byte of each answer, so the read's first span is bad; one asked for with it is good).
    await new Promise((r) => setTimeout(r, 200));
    const asked = source.requests.length;
    expect(new Set(source.requests.map(([c]) => c)).size).toBe(asked);
    const bad = toc.spans.findIndex((s) => s.c === source.requests[0]![0]);
    const cached = await readdir(cacheDir).catch(() => [] as string[]);
    expect(cached).not.toContain(String(bad));
    for (const name of cached) expect(createHash('sha256').update(await readFile(join(cacheDir, name))).digest('hex')).toBe(toc.spans[Number(name)]!.sha256);
    expect(lazy.stats().readErrors).toBe(1);
    // Refused again without asking the registry, for a while.
    await call<[number]>((cb) => lazy.handlers.read('/opt/t/lib/big.bin', fd, buf, 65536, 10, cb));
    expect(source.requests).toHaveLength(asked);
  });

  it('a stalled source: each attempt is bounded, then EIO; a later read succeeds once it answers', async () => {
    const { lazy, source, blob } = await layer({ attempts: 2, timeoutMs: 300 });
    source.mode = 'stall';
    const [, fd] = await call<[number, number]>((cb) => lazy.handlers.open('/opt/t/bin/tool', 0, cb));
    const buf = Buffer.alloc(4096);
    const t0 = performance.now();
    const [r] = await call<[number]>((cb) => lazy.handlers.read('/opt/t/bin/tool', fd, buf, 4096, 0, cb));
    const ms = performance.now() - t0;
    expect(r).toBe(-E.EIO);
    expect(source.requests).toHaveLength(2);
    expect(ms).toBeGreaterThanOrEqual(550);
    // Bounded, not hung (a stalled socket would otherwise wait for undici's 300 s): slack for a loaded machine.
    expect(ms).toBeLessThan(10_000);
    source.mode = 'ok';
    const [n] = await call<[number]>((cb) => lazy.handlers.read('/opt/t/bin/tool', fd, buf, 4096, 0, cb));
    expect(buf.subarray(0, n).toString()).toBe('#!/bin/sh\necho hi\n');
    expect(blob.length).toBeGreaterThan(0);
  });

  it('a reader walking the layer in order gets the next spans fetched ahead', async () => {
    const { lazy, source, toc } = await layer();
    const entry = toc.entries.find((e) => e.path.endsWith('big.bin'))!;
    const [, fd] = await call<[number, number]>((cb) => lazy.handlers.open('/opt/t/lib/big.bin', 0, cb));
    const buf = Buffer.alloc(32768);
    // Read on from the start until the reads cross into the next span.
    const firstSpan = toc.spans.findIndex((s) => s.u + s.us > entry.dataOffset!);
    let pos = 0;
    while (entry.dataOffset! + pos < toc.spans[firstSpan + 1]!.u + 1) {
      await call<[number]>((cb) => lazy.handlers.read('/opt/t/lib/big.bin', fd, buf, 32768, pos, cb));
      pos += 32768;
    }
    await new Promise((r) => setTimeout(r, 200));
    // Spans covered by the requests (adjacent spans asked for together share one).
    const asked = source.requests.flatMap((r) => spansIn(toc, r));
    expect(asked).toEqual(expect.arrayContaining([firstSpan, firstSpan + 1, firstSpan + 2, firstSpan + 3]));
    expect(Math.max(...asked)).toBe(firstSpan + 3);
  });

  it('the learned prefetch inflates its spans in its order, a window ahead of the furthest one read', async () => {
    const { lazy, toc } = await layer();
    const reader = new LazyReader(toc, lazy.fetcher, { aheadWindow: 3 });
    const list = [...toc.spans.keys()].reverse(); // the order a first start read them
    expect(list.length).toBeGreaterThan(8);
    await reader.prefetchInOrder(list);
    await new Promise((r) => setTimeout(r, 100));
    expect(reader.inflatedAhead).toBe(3); // nothing read yet: the first window only
    // A read in the list's fourth span moves the window on: three past it.
    const entry = toc.entries.find((e) => e.path.endsWith('big.bin'))!;
    const node = lazy.tree.lookup('/opt/t/lib/big.bin')!;
    const fourth = toc.spans[list[3]!]!;
    const offset = Math.max(fourth.u, entry.dataOffset!) - entry.dataOffset!;
    const bytes = await reader.read(node, offset, 10);
    expect(bytes).toHaveLength(10);
    await new Promise((r) => setTimeout(r, 100));
    expect(reader.inflatedAhead).toBe(7);
    // What was inflated ahead is what a read returns.
    const direct = await new LazyReader(toc, lazy.fetcher).read(node, offset, 10);
    expect(bytes.equals(direct)).toBe(true);
  });

  it('read-ahead follows each file: reads of another file in between keep it, jumps within a file do not start it', async () => {
    const { lazy, source, toc } = await layer();
    const entry = toc.entries.find((e) => e.path.endsWith('big.bin'))!;
    const spanOf = (pos: number) => toc.spans.findIndex((s) => s.u + s.us > entry.dataOffset! + pos);
    const asked = () => new Set(source.requests.flatMap((r) => spansIn(toc, r)));
    const [, big] = await call<[number, number]>((cb) => lazy.handlers.open('/opt/t/lib/big.bin', 0, cb));
    const [, tool] = await call<[number, number]>((cb) => lazy.handlers.open('/opt/t/bin/tool', 0, cb));
    const buf = Buffer.alloc(16384);
    // Random access: read near the end, then jump back into a later span than the first read's.
    const far = spanOf(600_000);
    await call<[number]>((cb) => lazy.handlers.read('/opt/t/lib/big.bin', big, buf, 4096, 600_000, cb));
    const back = toc.spans[far - 4]!.u + 10 - entry.dataOffset!;
    await call<[number]>((cb) => lazy.handlers.read('/opt/t/lib/big.bin', big, buf, 4096, back, cb));
    await call<[number]>((cb) => lazy.handlers.read('/opt/t/lib/big.bin', big, buf, 4096, toc.spans[far - 3]!.u + 10 - entry.dataOffset!, cb));
    await new Promise((r) => setTimeout(r, 200));
    expect([...asked()].sort((a, b) => a - b)).toEqual([far - 4, far - 3, far].sort((a, b) => a - b));
    // Sequential from the start of the file, with a read of another file between every two reads.
    const first = spanOf(0);
    let pos = 0;
    while (entry.dataOffset! + pos < toc.spans[first + 1]!.u + 1) {
      await call<[number]>((cb) => lazy.handlers.read('/opt/t/lib/big.bin', big, buf, 16384, pos, cb));
      await call<[number]>((cb) => lazy.handlers.read('/opt/t/bin/tool', tool, buf, 4096, 0, cb));
      pos += 16384;
    }
    await new Promise((r) => setTimeout(r, 200));
    expect(far - 4).toBeGreaterThan(first + 3); // the spans fetched ahead were not fetched before
    expect([...asked()]).toEqual(expect.arrayContaining([first + 2, first + 3]));
  });

  it('lends the native reads each inflated span and takes it back when dropped; a read answered natively is followed like its own', async () => {
    const { lazy, source, toc, tar } = await layer();
    const native = lazy.handlers.native!;
    const node = lazy.tree.lookup('/opt/t/lib/big.bin')!;
    // The layout: each file's tar offset and size by inode, nothing for directories and links.
    expect(native.files.offsets[node.ino]).toBe(node.dataOffset);
    expect(native.files.sizes[node.ino]).toBe(700_000);
    expect(native.files.sizes[lazy.tree.lookup('/opt/t/bin')!.ino]).toBe(-1);
    expect(native.files.sizes[lazy.tree.lookup('/opt/t/bin/big')!.ino]).toBe(-1);
    expect([...native.spanStarts]).toEqual([...toc.spans.map((s) => s.u), toc.uncompressedSize]);

    const lent = new Map<number, Buffer>();
    const events: string[] = [];
    const watch = (index: number, bytes: Buffer | null) => {
      events.push(`${index}:${bytes ? 'lent' : 'taken back'}`);
      if (bytes) lent.set(index, bytes);
      else lent.delete(index);
    };
    const reader = new LazyReader(toc, lazy.fetcher, { inflatedCacheBytes: 2 * 64 * 1024, wholeScatteredMax: 0, regionSpans: 0 });
    const first = toc.spans.findIndex((s) => s.u + s.us > node.dataOffset);
    // Reads of a span's last bytes: such a read waits for all of the span (one of its first bytes
    // may be answered before the rest is inflated, and lent).
    const lastBytesOf = (i: number) => toc.spans[i]!.u + toc.spans[i]!.us - 10 - node.dataOffset;
    await reader.read(node, lastBytesOf(first), 10);
    // A watcher hears of what is in memory already, then of what comes and goes.
    const stop = reader.watchSpans(watch);
    expect(events).toEqual([`${first}:lent`]);
    await reader.read(node, lastBytesOf(first + 1), 10);
    await reader.read(node, lastBytesOf(first + 2), 10);
    // Room for two spans: the one read longest ago is taken back.
    expect(events).toEqual([`${first}:lent`, `${first + 1}:lent`, `${first + 2}:lent`, `${first}:taken back`]);
    // What is lent is the span's verified, inflated bytes: the tar's own.
    for (const [i, bytes] of lent) expect(bytes.equals(tar.subarray(toc.spans[i]!.u, toc.spans[i]!.u + toc.spans[i]!.us))).toBe(true);

    // A read answered natively counts, joins the learned order, and keeps its span in memory.
    const readsBefore = reader.reads;
    reader.noteRead(node, toc.spans[first + 1]!.u - node.dataOffset, 10);
    expect(reader.reads).toBe(readsBefore + 1);
    await reader.read(node, lastBytesOf(first + 3), 10);
    expect(events.at(-1)).toBe(`${first + 2}:taken back`); // not first + 1, which was just read
    // Sequential reads answered natively fetch ahead as the reader's own would.
    const requestsBefore = source.requests.length;
    const end = toc.spans[first + 4]!.u - node.dataOffset;
    reader.noteRead(node, end - 4096, 4096);
    reader.noteRead(node, end, 4096);
    await new Promise((r) => setTimeout(r, 100));
    const fetched = source.requests.slice(requestsBefore).flatMap((r) => spansIn(toc, r));
    expect(fetched).toEqual(expect.arrayContaining([first + 5, first + 6]));
    expect(reader.readOrder()).toEqual([first, first + 1, first + 2, first + 3, first + 4]);
    stop();
    await reader.read(node, lastBytesOf(first + 5), 10);
    expect(events).toHaveLength(6); // a watcher that stopped hears nothing more
  });

  it("a read waits for its own bytes of a span, not for the rest of it: later steps are held and the read is answered", async () => {
    const { lazy, toc, tar } = await layer();
    const node = lazy.tree.lookup('/opt/t/lib/big.bin')!;
    const index = toc.spans.findIndex((s) => s.u + s.us > node.dataOffset + 1000);
    const span = toc.spans[index]!;
    // Every step after the first (which ends with the first read's bytes) waits for the test.
    const { inflater, stops, release } = heldSteps((_until, n) => n > 1);
    const reader = new LazyReader(toc, lazy.fetcher, { inflater, wholeScatteredMax: 0, regionSpans: 0 });
    const offset = span.u - node.dataOffset + 100;
    const bytes = await reader.read(node, offset, 4096);
    expect(bytes.equals(tar.subarray(node.dataOffset + offset, node.dataOffset + offset + 4096))).toBe(true);
    expect(stops).toEqual([100 + 4096, span.us + 1]); // the first step ended with the read's bytes
    // A read further into the same span waits for the held step, then gets the tar's bytes.
    let late = false;
    const further = reader.read(node, span.u + span.us - 10 - node.dataOffset, 10).then((b) => ((late = true), b));
    await new Promise((r) => setTimeout(r, 20));
    expect(late).toBe(false);
    release();
    expect((await further).equals(tar.subarray(span.u + span.us - 10, span.u + span.us))).toBe(true);
  });

  it('a read is bounded as one span fetch is, even when its spans queue behind others', async () => {
    const { lazy, source } = await layer({ attempts: 2, timeoutMs: 300, concurrency: 1 });
    source.mode = 'stall';
    const [, fd] = await call<[number, number]>((cb) => lazy.handlers.open('/opt/t/lib/big.bin', 0, cb));
    const buf = Buffer.alloc(200_000);
    const t0 = performance.now();
    // 200 kB of 64 KiB spans: four spans, one connection, each span 2 × 300 ms when stalled.
    const [r] = await call<[number]>((cb) => lazy.handlers.read('/opt/t/lib/big.bin', fd, buf, 200_000, 0, cb));
    expect(r).toBe(-E.EIO);
    // The read's own deadline (2 × (300 + 20) + 500 ms) ends it; slack for a loaded machine.
    expect(performance.now() - t0).toBeLessThan(10_000);
  });

  it('the learned prefetch has at most two requests out, so its spans come in about list order; a read is not held behind it', async () => {
    const { lazy, source, toc } = await layer();
    let open!: () => void;
    source.gate = new Promise((r) => (open = r));
    // Every other span: no two adjacent, so each is a request of its own.
    const list = [...toc.spans.keys()].filter((i) => i % 2 === 0);
    expect(list.length).toBeGreaterThan(3);
    const prefetched = Promise.all(list.map((i) => lazy.fetcher.span(i, 'prefetch')));
    await new Promise((r) => setTimeout(r, 50));
    expect(source.inFlight).toBe(2);
    expect(source.requests.map(([c]) => c)).toEqual([toc.spans[list[0]!]!.c, toc.spans[list[1]!]!.c]);
    const read = lazy.fetcher.span(1, 'read');
    await new Promise((r) => setTimeout(r, 50));
    expect(source.inFlight).toBe(3);
    open();
    await Promise.all([prefetched, read]);
    expect(source.requests).toHaveLength(list.length + 1);
  });

  it('adjacent spans asked for together come in one request, each verified on its own', async () => {
    const { lazy, source, toc } = await layer();
    await Promise.all([2, 3, 4].map((i) => lazy.fetcher.span(i, 'prefetch')));
    expect(source.requests).toEqual([[toc.spans[2]!.c, toc.spans[4]!.c + toc.spans[4]!.cs - 1]]);
    // The first span of the next run is corrupt (FakeSource flips the first byte it sends): it
    // alone fails, the others of its request are handed over.
    source.mode = 'corrupt';
    const results = await Promise.allSettled([5, 6, 7].map((i) => lazy.fetcher.span(i, 'prefetch')));
    expect(results.map((r) => r.status)).toEqual(['rejected', 'fulfilled', 'fulfilled']);
    expect((results[0] as PromiseRejectedResult).reason).toMatchObject({ code: 'LAZY_FETCH_FAILED', cause: { code: 'DIGEST_MISMATCH' } });
    expect(source.requests).toHaveLength(2);
    // A flipped last byte (the run's last span, in the answer's last chunk) fails that span
    // alone; the spans before it in the same answer are handed over, each its own bytes.
    source.mode = 'corrupt-last';
    const later = await Promise.allSettled([8, 9, 10].map((i) => lazy.fetcher.span(i, 'prefetch')));
    expect(later.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled', 'rejected']);
    expect((later[2] as PromiseRejectedResult).reason).toMatchObject({ code: 'LAZY_FETCH_FAILED', cause: { code: 'DIGEST_MISMATCH' } });
    for (const [n, i] of [8, 9].entries()) expect(createHash('sha256').update((later[n] as PromiseFulfilledResult<Buffer>).value).digest('hex')).toBe(toc.spans[i]!.sha256);
    expect(source.requests).toHaveLength(3);
  });

  it('a refused connection is retried up to the attempt limit', async () => {
    const { lazy, source } = await layer({ attempts: 3 });
    source.mode = 'fail';
    await expect(lazy.fetcher.span(0)).rejects.toMatchObject({ code: 'LAZY_FETCH_FAILED' });
    expect(source.requests).toHaveLength(3);
  });

  it('a damaged cache file is dropped and fetched again, never served', async () => {
    const { lazy, source, cacheDir, toc } = await layer();
    await lazy.fetcher.span(1);
    await lazy.fetcher.stored([1]);
    expect(source.requests).toHaveLength(1);
    const { chmod } = await import('node:fs/promises');
    await chmod(join(cacheDir, '1'), 0o600);
    await writeFile(join(cacheDir, '1'), Buffer.alloc(toc.spans[1]!.cs));
    const fresh = new SpanFetcher(toc.spans, source, new SpanCache(cacheDir), { logger: silentLogger() });
    const bytes = await fresh.span(1);
    expect(createHash('sha256').update(bytes).digest('hex')).toBe(toc.spans[1]!.sha256);
    expect(source.requests).toHaveLength(2);
  });

  it("the helper's cache lists its spans once: earlier runs' spans are found, a span it writes is found, a vanished file is fetched again", async () => {
    const { lazy, source, cacheDir, toc } = await layer();
    await lazy.fetcher.span(0);
    await lazy.fetcher.stored([0]);
    const cache = new SpanCache(cacheDir, { soleWriter: true });
    expect(await cache.get(0, toc.spans[0]!.sha256)).toBeDefined(); // from the listing
    // A file that appears behind its back is not looked for: the listing is what it asks.
    await lazy.fetcher.span(2);
    await lazy.fetcher.stored([2]);
    expect(await new SpanCache(cacheDir).get(2, toc.spans[2]!.sha256)).toBeDefined();
    expect(await cache.get(2, toc.spans[2]!.sha256)).toBeUndefined();
    const fetcher = new SpanFetcher(toc.spans, source, cache, { logger: silentLogger() });
    await fetcher.span(1);
    await fetcher.stored([1]);
    expect(await cache.get(1, toc.spans[1]!.sha256)).toBeDefined(); // written by this cache: listed
    const { rm } = await import('node:fs/promises');
    await rm(join(cacheDir, '0'), { force: true });
    const before = source.requests.length;
    const bytes = await fetcher.span(0);
    expect(createHash('sha256').update(bytes).digest('hex')).toBe(toc.spans[0]!.sha256);
    expect(source.requests.length).toBe(before + 1);
  });

  it("an executable file's first read fetches and inflates all of it; a data file's, and a too big executable's, only what they read", async () => {
    const dir = await tmp();
    const src = join(dir, 'src');
    await mkdir(join(src, 'bin'), { recursive: true });
    await writeFile(join(src, 'bin', 'app'), noise(300_000, 'app'), { mode: 0o755 });
    await writeFile(join(src, 'bin', 'huge'), noise(300_001, 'huge'), { mode: 0o755 });
    await writeFile(join(src, 'data'), noise(300_000, 'data'), { mode: 0o644 });
    const built = await buildLayerFile({ dir: src, prefix: '/opt/x', outFile: join(dir, 'layer.tgz'), spanSize: 64 * 1024 });
    const source = new FakeSource(await readFile(join(dir, 'layer.tgz')));
    const lazy = new LazyLayer(built.toc, { where: 'test layer', tree: {}, source, cacheDir: join(dir, 'cache'), fetch: { attempts: 2, attemptTimeoutMs: 2000 }, logger: silentLogger() });
    const reader = new LazyReader(built.toc, lazy.fetcher, { wholeExecutableMax: 300_000 });
    const asked = () => new Set(source.requests.flatMap((r) => spansIn(built.toc, r)));
    const first = (path: string) => {
      const node = lazy.tree.lookup(path)!;
      return { node, span: reader.spansOf(node)[0]! };
    };

    const data = first('/opt/x/data');
    await reader.read(data.node, 0, 4096);
    await new Promise((r) => setTimeout(r, 100));
    expect([...asked()]).toEqual([data.span]);

    const app = first('/opt/x/bin/app');
    const appSpans = reader.spansOf(app.node);
    expect(appSpans.length).toBeGreaterThan(4);
    const inflated = new Set<number>();
    reader.watchSpans((i, b) => b && inflated.add(i));
    const bytes = await reader.read(app.node, 0, 4096);
    await new Promise((r) => setTimeout(r, 100));
    expect([...asked()].sort((a, b) => a - b)).toEqual([data.span, ...appSpans].sort((a, b) => a - b));
    expect(appSpans.filter((i) => !inflated.has(i))).toEqual([]);
    // Its later spans come from memory now: a read of the last one asks for nothing more, and only read spans enter the read order.
    const requests = source.requests.length;
    const tail = await reader.read(app.node, app.node.size - 10, 10);
    expect(source.requests).toHaveLength(requests);
    expect(reader.readOrder()).toEqual([data.span, appSpans[0], appSpans.at(-1)]);
    const direct = new LazyReader(built.toc, lazy.fetcher);
    expect(bytes.equals(await direct.read(app.node, 0, 4096))).toBe(true);
    expect(tail.equals(await direct.read(app.node, app.node.size - 10, 10))).toBe(true);

    // One byte over the bound: fetched as read, like a data file.
    const huge = first('/opt/x/bin/huge');
    const before = asked();
    await reader.read(huge.node, 0, 4096);
    await new Promise((r) => setTimeout(r, 100));
    expect([...asked()].filter((i) => !before.has(i))).toEqual(before.has(huge.span) ? [] : [huge.span]);
  });

  it('a file read in three different spans is fetched whole, behind the read that asked on a request of its own', async () => {
    const { lazy, source, toc, tar } = await layer({ scattered: true });
    const node = lazy.tree.lookup('/opt/t/lib/big.bin')!;
    const spans = lazy.reader.spansOf(node);
    expect(spans.length).toBeGreaterThan(8);
    const asked = () => source.requests.map((r) => spansIn(toc, r));
    const at = (span: number) => toc.spans[span]!.u - node.dataOffset + 10;
    const readAt = async (span: number) => {
      const bytes = await lazy.reader.read(node, at(span), 100);
      expect(bytes.equals(tar.subarray(toc.spans[span]!.u + 10, toc.spans[span]!.u + 110))).toBe(true);
    };
    // Two spans apart from each other: each read fetches its own.
    await readAt(spans[1]!);
    await readAt(spans[6]!);
    expect(asked()).toEqual([[spans[1]], [spans[6]]]);
    // The third: its span comes alone, then all the rest of the file.
    await readAt(spans[4]!);
    await new Promise((r) => setTimeout(r, 200));
    expect(asked()[2]).toEqual([spans[4]]);
    expect(asked().flat().sort((a, b) => a - b)).toEqual(spans);
    // And nothing more for later reads of it.
    const before = source.requests.length;
    await readAt(spans[8]!);
    expect(source.requests).toHaveLength(before);
  });

  it('a larger file read in three different spans has each span a read misses fetched with its aligned block of four, within the file', async () => {
    const { lazy, source, toc, tar } = await layer({ blocks: true, after: true });
    const node = lazy.tree.lookup('/opt/t/lib/big.bin')!;
    const spans = lazy.reader.spansOf(node);
    const [firstOfFile, lastOfFile] = [spans[0]!, spans[spans.length - 1]!];
    expect(spans.length).toBeGreaterThan(9);
    const asked = () => new Set(source.requests.flatMap((r) => spansIn(toc, r)));
    const at = (span: number) => Math.max(toc.spans[span]!.u, node.dataOffset) - node.dataOffset + 10;
    const readAt = async (span: number) => {
      const bytes = await lazy.reader.read(node, at(span), 100);
      expect(bytes.equals(tar.subarray(node.dataOffset + at(span), node.dataOffset + at(span) + 100))).toBe(true);
      await new Promise((r) => setTimeout(r, 100));
    };
    const blockOf = (i: number) => [0, 1, 2, 3].map((k) => i - (i % 4) + k).filter((k) => k >= firstOfFile && k <= lastOfFile);
    // Two reads in different spans fetch only their own.
    const [a, b, c] = [spans[1]!, spans[6]!, lastOfFile];
    await readAt(a);
    await readAt(b);
    expect([...asked()].sort((x, y) => x - y)).toEqual([a, b]);
    // The third different span: its block comes with it, cut at the end of the file (more.bin's spans are not fetched).
    await readAt(c);
    expect([...asked()].sort((x, y) => x - y)).toEqual([...new Set([a, b, ...blockOf(c)])].sort((x, y) => x - y));
    // A read in a span its block brought fetches nothing; a miss in another block brings that block.
    const inBlock = blockOf(c).find((k) => k !== c)!;
    const before = source.requests.length;
    await readAt(inBlock);
    expect(source.requests).toHaveLength(before);
    const other = spans.find((k) => !asked().has(k) && !blockOf(a).includes(k) && !blockOf(c).includes(k))!;
    await readAt(other);
    expect([...asked()].sort((x, y) => x - y)).toEqual([...new Set([a, b, ...blockOf(c), ...blockOf(other)])].sort((x, y) => x - y));
    const more = lazy.reader.spansOf(lazy.tree.lookup('/opt/t/lib/more.bin')!).filter((k) => k > lastOfFile);
    expect(more.length).toBeGreaterThan(0);
    expect(more.filter((k) => asked().has(k))).toEqual([]);
    await lazy.close();
  });

  it("a reader walking a file in order gets its next spans fetched ahead, but not the next file's", async () => {
    const { lazy, source, toc } = await layer({ after: true });
    const node = lazy.tree.lookup('/opt/t/lib/big.bin')!;
    const spans = lazy.reader.spansOf(node);
    const lastOfFile = spans[spans.length - 1]!;
    const asked = () => new Set(source.requests.flatMap((r) => spansIn(toc, r)));
    // From two spans before the file's last on, in order to its end.
    let pos = toc.spans[lastOfFile - 2]!.u - node.dataOffset;
    while (pos < node.size) {
      await lazy.reader.read(node, pos, 32768);
      pos += 32768;
    }
    await new Promise((r) => setTimeout(r, 200));
    expect(asked()).toContain(lastOfFile);
    expect([...asked()].filter((k) => k > lastOfFile)).toEqual([]);
    await lazy.close();
  });

  it("a prefetched span's cache write waits until the layer has no request out; stored() does not wait; a close keeps nothing", async () => {
    const { lazy, source, cacheDir, toc } = await layer();
    const onDisk = (i: number) => existsSync(join(cacheDir, String(i)));
    const until = async (ok: () => boolean) => {
      for (let k = 0; k < 200 && !ok(); k++) await new Promise((r) => setTimeout(r, 10));
    };
    let open!: () => void;
    source.gates.set(toc.spans[6]!.c, new Promise((r) => (open = r)));
    const held = lazy.fetcher.span(6, 'read');
    await until(() => source.inFlight === 1);
    const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
    expect(sha(await lazy.fetcher.span(2, 'prefetch'))).toBe(toc.spans[2]!.sha256);
    expect(sha(await lazy.fetcher.span(3, 'read'))).toBe(toc.spans[3]!.sha256);
    await until(() => onDisk(3));
    // A span a read fetched is written at once; the prefetched one waits while span 6 is out.
    expect([onDisk(2), onDisk(3), source.inFlight]).toEqual([false, true, 1]);
    // Served from memory meanwhile, without asking again.
    expect(sha(await lazy.fetcher.span(2, 'read'))).toBe(toc.spans[2]!.sha256);
    expect(source.requests).toHaveLength(3);
    open();
    await held;
    await until(() => onDisk(2));
    expect(onDisk(2)).toBe(true);
    // Asked for by the completion, a waiting write starts at once.
    let open8!: () => void;
    source.gates.set(toc.spans[8]!.c, new Promise((r) => (open8 = r)));
    const stalled = lazy.fetcher.span(8, 'read').catch((err: unknown) => err);
    await until(() => source.inFlight === 1);
    await lazy.fetcher.span(4, 'prefetch');
    await lazy.fetcher.stored([4]);
    expect([onDisk(4), source.inFlight]).toEqual([true, 1]);
    // Closed with a write waiting: the span stays off the disk, and nothing hangs.
    await lazy.fetcher.span(10, 'prefetch');
    lazy.fetcher.close();
    await lazy.fetcher.stored([10]);
    expect(onDisk(10)).toBe(false);
    // The request out at the close is answered after it: its span is neither handed over nor kept.
    open8();
    expect(await stalled).toMatchObject({ code: 'LAZY_FETCH_FAILED', cause: { code: 'LAZY_CLOSED' } });
    expect(onDisk(8)).toBe(false);
  });

  it('one fetch per span however many readers wait for it', async () => {
    const { lazy, source } = await layer();
    await Promise.all([lazy.fetcher.span(2), lazy.fetcher.span(2, 'background'), lazy.fetcher.span(2, 'prefetch')]);
    expect(source.requests).toHaveLength(1);
  });

  it('a prefetched span is read from memory after its cache write; a span a read fetched comes from the cache', async () => {
    const { lazy, source, cacheDir, toc } = await layer();
    const { rm } = await import('node:fs/promises');
    await lazy.fetcher.span(2, 'prefetch');
    await lazy.fetcher.span(5, 'read');
    await lazy.fetcher.stored([2, 5]);
    // Both went to the disk; with the files gone, only the prefetched span is still at hand.
    await rm(join(cacheDir, '2'));
    await rm(join(cacheDir, '5'));
    const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
    expect(sha(await lazy.fetcher.span(2, 'read'))).toBe(toc.spans[2]!.sha256);
    expect(source.requests).toHaveLength(2);
    expect(sha(await lazy.fetcher.span(5, 'read'))).toBe(toc.spans[5]!.sha256);
    expect(source.requests).toHaveLength(3);
    // Once a reader has inflated a prefetched span, its compressed bytes are not kept for it.
    const node = lazy.tree.lookup('/opt/t/lib/big.bin')!;
    const i = lazy.reader.spansOf(node)[8]!;
    await lazy.fetcher.span(i, 'prefetch');
    await lazy.fetcher.stored([i]);
    await lazy.reader.read(node, toc.spans[i]!.u - node.dataOffset, 10);
    await rm(join(cacheDir, String(i)));
    await lazy.fetcher.span(i, 'read');
    expect(source.requests).toHaveLength(5);
  });
});

describe('LazyTree', () => {
  const base = (entries: SeekableToc['entries']): SeekableToc => ({
    version: 1,
    digest: `sha256:${'a'.repeat(64)}` as SeekableToc['digest'],
    diffId: `sha256:${'b'.repeat(64)}` as SeekableToc['diffId'],
    size: 1,
    uncompressedSize: 1 << 20,
    gzip: { headerSize: 10, trailerSize: 8 },
    spans: [{ c: 0, cs: 1, u: 0, us: 1 << 20, sha256: 'c'.repeat(64) }],
    entries,
  });
  const f = (path: string, extra: Partial<SeekableToc['entries'][number]> = {}) => ({ path, type: 'file' as const, mode: 0o644, uid: 0, gid: 0, size: 3, mtime: 0, offset: 0, dataOffset: 512, ...extra });

  it('creates missing parents, lets a later entry win, and resolves hardlinks to earlier files', () => {
    const t = LazyTree.fromToc(base([f('a/b/c'), f('a/b/c', { size: 5 }), { ...f('a/h'), type: 'hardlink', size: 0, linkname: 'a/b/c', dataOffset: undefined }]), { where: 't' });
    expect(t.lookup('/a')?.type).toBe('dir');
    expect(t.lookup('/a/b/c')?.size).toBe(5);
    expect(t.lookup('/a/h')).toBe(t.lookup('/a/b/c'));
    expect(t.lookup('/a/h')?.nlink).toBe(2);
    // A directory's links: itself, its entry in the parent, and each subdirectory's `..`.
    expect([t.lookup('/')?.nlink, t.lookup('/a')?.nlink, t.lookup('/a/b')?.nlink]).toEqual([3, 3, 2]);
    expect(t.ownedPaths).toEqual(['a/b/c', 'a/h']);
  });

  it.each([
    ['a whiteout', [f('a/.wh.b')], /whiteouts/],
    ['a device node', [{ ...f('dev/null'), type: 'char' as const, size: 0, devmajor: 1, devminor: 3, dataOffset: undefined }], /device nodes/],
    ['extended attributes', [f('a', { xattrs: { 'security.capability': 'AQAAAg==' } })], /extended attributes/],
    ['a hardlink to nothing', [{ ...f('a'), type: 'hardlink' as const, size: 0, linkname: 'nope', dataOffset: undefined }], /hardlink/],
    ['a file under a file', [f('a'), f('a/b')], /not a directory/],
  ])('does not show %s lazily (LAZY_REFUSED: the layer is then pulled whole)', (_n, entries, message) => {
    expect(() => LazyTree.fromToc(base(entries), { where: 't' })).toThrow(message);
    expect(() => LazyTree.fromToc(base(entries), { where: 't' })).toThrow(expect.objectContaining({ code: 'LAZY_REFUSED' }));
  });

  it.each([
    ['a ".." name', [f('a/../../etc/passwd')], 'dot-dot'],
    ['an absolute name', [f('/etc/passwd')], 'absolute-name'],
    ['an overlay xattr', [f('a', { xattrs: { 'trusted.overlay.opaque': 'eQ==' } })], 'overlay-xattr'],
  ])('refuses %s as an unpack does (LAYER_UNSAFE)', (_n, entries, rule) => {
    expect(() => LazyTree.fromToc(base(entries), { where: 't' })).toThrow(expect.objectContaining({ code: 'LAYER_UNSAFE', details: expect.objectContaining({ rule }) }));
  });
});
