import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { HostpullError } from '../../../src/errors.js';
import type { Digest } from '../../../src/oci/digest.js';
import { applyLayer, ApplyWorkers } from '../../../src/unpack/index.js';
import { writeTar, type RawEntry } from '../../helpers/tar-writer.js';
import { BUILT_APPLY_WORKER, gzip } from './sandbox.js';

// ApplyWorkers keeps applyLayer's contract (the malicious-layer corpus runs through it too, in
// malicious-layers.test.ts); these tests cover what only the worker side has: several layers per
// worker, back-pressure, the source failing, aborts and a worker that dies.

const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}` as Digest;

function layerTar(tag: string, files: number, bytes: number): Buffer {
  const entries: RawEntry[] = [{ name: `opt/${tag}/`, type: 'dir' }];
  for (let i = 0; i < files; i++) {
    const content = Buffer.alloc(bytes);
    for (let j = 0; j < bytes; j += 4) content.writeUInt32LE((i * 2654435761 + j * 40503) >>> 0, Math.min(j, bytes - 4));
    entries.push({ name: `opt/${tag}/f${i}`, type: 'file', content });
  }
  return writeTar(entries);
}

/** Relative path → sha256 of every regular file below dir. */
function tree(dir: string, rel = ''): Record<string, string> {
  const out: Record<string, string> = {};
  for (const d of readdirSync(join(dir, rel), { withFileTypes: true })) {
    const r = rel === '' ? d.name : `${rel}/${d.name}`;
    if (d.isDirectory()) Object.assign(out, tree(dir, r));
    else out[r] = createHash('sha256').update(readFileSync(join(dir, r))).digest('hex');
  }
  return out;
}

/** A source that delivers the bytes in small chunks, so many messages and acks cross over. */
function chunked(buf: Buffer, size = 7_000): Readable {
  const parts: Buffer[] = [];
  for (let i = 0; i < buf.length; i += size) parts.push(buf.subarray(i, i + size));
  return Readable.from(parts);
}

describe('ApplyWorkers', () => {
  let dir: string;
  let workers: ApplyWorkers;
  const target = (name: string) => {
    const t = join(dir, name);
    mkdirSync(t);
    return t;
  };
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'hp-workers-'));
    workers = new ApplyWorkers({ entry: BUILT_APPLY_WORKER, size: 2, maxInFlight: 64 * 1024 });
  });
  afterEach(async () => {
    await workers.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('applies several layers at once on at most `size` workers, with the same result as applyLayer', async () => {
    const tars = ['A', 'B', 'C', 'D', 'E'].map((t, i) => layerTar(t, 20 + i, 30_000 + i * 1000));
    const results = await Promise.all(
      tars.map((tar, i) => workers.apply(chunked(gzip(tar)), { compression: 'gzip', target: target(`w${i}`), expectedDiffId: sha256(tar) }, 1000 * (i + 1))),
    );
    expect(workers.workers).toBe(2);
    for (const [i, tar] of tars.entries()) {
      const reference = await applyLayer(Readable.from([gzip(tar)]), { compression: 'gzip', target: target(`t${i}`) });
      expect(results[i]).toEqual(reference);
      expect(tree(join(dir, `w${i}`))).toEqual(tree(join(dir, `t${i}`)));
    }
  });

  it('starts workers ahead of the layers (within its size) and hands the next layers to them', async () => {
    workers.warm(5);
    expect(workers.workers).toBe(2);
    workers.warm(1);
    expect(workers.workers).toBe(2);
    const tar = layerTar('W', 5, 10_000);
    const result = await workers.apply(chunked(gzip(tar)), { compression: 'gzip', target: target('warm') }, 100);
    expect(result.diffId).toBe(sha256(tar));
    expect(workers.workers).toBe(2);
  });

  it('gets its batch buffers back from the workers and fills them again, the data intact', async () => {
    const big = new ApplyWorkers({ entry: BUILT_APPLY_WORKER, size: 1 });
    try {
      expect(big.spareBatches).toBe(0);
      // Incompressible enough that the gzip spans several 1 MiB batches.
      const tars = ['R', 'S'].map((t) => layerTar(t, 6, 700_000));
      for (const [i, tar] of tars.entries()) {
        const result = await big.apply(chunked(gzip(tar), 65_536), { compression: 'gzip', target: target(`r${i}`), expectedDiffId: sha256(tar) }, tar.length);
        expect(result.diffId).toBe(sha256(tar));
        expect(big.spareBatches).toBeGreaterThan(0);
        expect(big.spareBatches).toBeLessThanOrEqual(8);
        const reference = await applyLayer(Readable.from([gzip(tar)]), { compression: 'gzip', target: target(`rt${i}`) });
        expect(tree(join(dir, `r${i}`))).toEqual(tree(join(dir, `rt${i}`)));
      }
    } finally {
      await big.close();
    }
  });

  it('counts as idle only the running workers that have no layer to apply', async () => {
    expect(workers.idle).toBe(0);
    workers.warm(2);
    expect(workers.idle).toBe(2);
    const source = new PassThrough();
    const pending = workers.apply(source, { compression: 'gzip', target: target('busy') }, 100);
    expect(workers.idle).toBe(1);
    const tar = layerTar('I', 3, 5_000);
    source.end(gzip(tar));
    expect((await pending).diffId).toBe(sha256(tar));
    expect(workers.idle).toBe(2);
  });

  it('reports a refused layer with its code and leaves the other layers of the same worker alone', async () => {
    const good = layerTar('G', 10, 50_000);
    const bad = writeTar([{ name: '../escape', type: 'file', content: 'x' }]);
    const single = new ApplyWorkers({ entry: BUILT_APPLY_WORKER, size: 1 });
    try {
      const [ok, refused] = await Promise.allSettled([
        single.apply(chunked(good), { compression: 'none', target: target('good'), expectedDiffId: sha256(good) }),
        single.apply(chunked(bad), { compression: 'none', target: target('bad') }),
      ]);
      expect(ok.status).toBe('fulfilled');
      expect(refused).toMatchObject({ status: 'rejected', reason: { name: 'HostpullError', code: 'LAYER_UNSAFE' } });
      expect((refused as PromiseRejectedResult).reason).toBeInstanceOf(HostpullError);
      expect(single.workers).toBe(1);
    } finally {
      await single.close();
    }
  });

  it('a wrong diffID is DIFFID_MISMATCH, as on the calling thread', async () => {
    const tar = layerTar('X', 3, 1000);
    const err = await workers.apply(chunked(tar), { compression: 'none', target: target('x'), expectedDiffId: sha256(Buffer.from('other')) }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'DIFFID_MISMATCH', details: { expected: sha256(Buffer.from('other')), actual: sha256(tar) } });
  });

  it("reports the source's own error once the worker has stopped, and tears the source down", async () => {
    const source = new PassThrough();
    const tar = layerTar('S', 50, 20_000);
    const pending = workers.apply(source, { compression: 'none', target: target('s') });
    source.write(tar.subarray(0, 300_000));
    const cause = new HostpullError('DIGEST_MISMATCH', 'blob sha256:ab… from the test: content hashes to something else');
    setTimeout(() => source.destroy(cause), 20);
    await expect(pending).rejects.toBe(cause);
    expect(source.destroyed).toBe(true);
  });

  it('an abort stops the layer with ABORTED', async () => {
    const source = new PassThrough();
    const abort = new AbortController();
    const pending = workers.apply(source, { compression: 'none', target: target('a'), signal: abort.signal });
    source.write(layerTar('S', 5, 20_000).subarray(0, 50_000));
    setTimeout(() => abort.abort(), 20);
    await expect(pending).rejects.toMatchObject({ code: 'ABORTED' });
  });

  it('holds back a source faster than the worker (maxInFlight), and still delivers every byte', async () => {
    const tar = layerTar('P', 40, 64 * 1024);
    const source = chunked(tar, 16 * 1024);
    let pauses = 0;
    let bytes = 0;
    source.on('pause', () => pauses++);
    source.on('data', (c: Buffer) => {
      bytes += c.length;
    });
    const result = await workers.apply(source, { compression: 'none', target: target('p'), expectedDiffId: sha256(tar) });
    expect(result.uncompressedSize).toBe(tar.length);
    expect(bytes).toBe(tar.length);
    // 2.6 MB through a 64 KiB window: the source must have been paused again and again.
    expect(pauses).toBeGreaterThan(10);
  });

  it('a worker that dies fails its layers with LAYER_WRITE_FAILED naming the layer, and the next layer gets a new worker', async () => {
    const crashing = new ApplyWorkers({ entry: join(dir, 'crash.mjs'), size: 1 });
    writeFileSync(join(dir, 'crash.mjs'), "import { parentPort } from 'node:worker_threads'; parentPort.on('message', () => process.exit(3));\n");
    try {
      const t = target('c');
      const err = await crashing.apply(chunked(layerTar('C', 2, 100)), { compression: 'none', target: t }).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'LAYER_WRITE_FAILED' });
      expect((err as Error).message).toContain(t);
      expect(crashing.workers).toBe(0);
    } finally {
      await crashing.close();
    }
  });
});
