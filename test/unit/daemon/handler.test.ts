/**
 * The daemon's routes through the pure handler: no socket, a fake HostApi, a real (empty) store
 * for /metrics.
 */
import { EventEmitter } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDaemonHandler, type DaemonHandlerDeps } from '../../../src/daemon/handler.js';
import type { HostApi, HostGcOptions, HostPullOptions } from '../../../src/daemon/host-api.js';
import { DaemonMetrics } from '../../../src/daemon/metrics.js';
import { RequestTracker } from '../../../src/daemon/request-tracker.js';
import type { ContainerApi, PreparedRootfs } from '../../../src/daemon/handler.js';
import { HostpullError } from '../../../src/errors.js';
import { silentLogger } from '../../../src/log.js';
import type { Digest } from '../../../src/oci/digest.js';
import { formatReference, parseReference, type ImageReference } from '../../../src/oci/reference.js';
import type { PullResult } from '../../../src/pull/puller.js';
import { ContentStore } from '../../../src/store/content-store.js';
import { makeTempDir, removeTempDir } from '../../helpers/tmp.js';

class FakeResponse extends EventEmitter {
  status = 0;
  headers: Record<string, unknown> = {};
  body = '';
  headersSent = false;
  destroyed = false;
  writableFinished = false;
  readonly finished: Promise<void>;
  #resolve!: () => void;
  constructor() {
    super();
    this.finished = new Promise((r) => (this.#resolve = r));
  }
  writeHead(status: number, headers: Record<string, unknown> = {}) {
    this.status = status;
    this.headers = { ...this.headers, ...headers };
    this.headersSent = true;
    return this;
  }
  flushHeaders() {}
  setHeader(name: string, value: unknown) {
    this.headers[name] = value;
  }
  write(chunk: string) {
    this.body += chunk;
    return true;
  }
  end(chunk?: string) {
    if (chunk) this.body += chunk;
    if (this.destroyed) {
      this.#resolve();
      return this;
    }
    this.writableFinished = true;
    this.emit('finish');
    this.emit('close');
    this.#resolve();
    return this;
  }
}

function request(method: string, url: string, body?: unknown): IncomingMessage {
  const req = Readable.from(body === undefined ? [] : [Buffer.from(typeof body === 'string' ? body : JSON.stringify(body))]) as unknown as IncomingMessage;
  Object.assign(req, { method, url, headers: {} });
  return req;
}

const DIGEST = `sha256:${'a'.repeat(64)}` as Digest;

function result(reference: string): PullResult {
  return {
    reference,
    manifestDigest: DIGEST,
    configDigest: DIGEST,
    startedAt: 1,
    finishedAt: 2,
    ok: true,
    upToDate: false,
    bytesFetched: 10,
    bytesReused: 0,
    layerHits: 0,
    layerMisses: 1,
    phases: { resolve: 1, layers: 2, total: 3 },
    layers: [],
  };
}

class FakeApi implements HostApi {
  readonly mode = 'local' as const;
  pulls: Array<{ ref: ImageReference; options: HostPullOptions }> = [];
  gcCalls: HostGcOptions[] = [];
  pullImpl: (ref: ImageReference, o: HostPullOptions) => Promise<PullResult> = async (ref, o) => {
    o.onEvent?.({ type: 'layer-start', digest: DIGEST, size: 5, resumeFrom: 0 });
    o.onEvent?.({ type: 'layer-done', digest: DIGEST, hit: false, fetchedBytes: 5 });
    return result(formatReference(ref));
  };
  async pull(ref: ImageReference, options: HostPullOptions = {}) {
    this.pulls.push({ ref, options });
    return this.pullImpl(ref, options);
  }
  async images() {
    return [];
  }
  async stats() {
    return { pulls: 0, failedPulls: 0, upToDatePulls: 0, bytesFetched: 0, bytesFetchedLazily: 0, bytesReused: 0, layerHits: 0, layerMisses: 0, layerHitRate: 0, byteHitRate: 0, store: { blobs: 0, blobBytes: 0, layers: 0, unpackedBytes: 0 } };
  }
  async gc(options: HostGcOptions = {}) {
    this.gcCalls.push(options);
    return {
      dryRun: options.dryRun ?? false,
      maxStoreSize: options.maxStoreSize ?? null,
      imagesRemoved: [],
      layersRemoved: 0,
      blobsRemoved: 0,
      bytesBefore: 0,
      bytesAfter: 0,
      freedBytes: 0,
      overBudget: false,
      skipped: 0,
      partialsRemoved: 0,
      partialBytesFreed: 0,
    };
  }
  stored = new Set<string>(['127.0.0.1:5000/hostpull:JDK17.0']);
  async removeImages(references: readonly string[]) {
    const unknown = references.filter((r) => !this.stored.has(r));
    if (unknown.length > 0) throw new HostpullError('IMAGE_UNKNOWN', `not in the store: ${unknown.join(', ')}; nothing was removed`);
    for (const r of references) this.stored.delete(r);
    return references.map((reference) => ({ reference, manifestDigest: DIGEST }));
  }
  async close() {}
}

let dir: string;
let store: ContentStore;

beforeAll(async () => {
  dir = await makeTempDir('daemon-handler');
  store = await ContentStore.open(`${dir}/root`);
});
afterAll(async () => {
  store?.close();
  await removeTempDir(dir);
});

function setup(overrides: Partial<DaemonHandlerDeps> = {}) {
  const api = new FakeApi();
  const tracker = new RequestTracker();
  const done: PullResult[] = [];
  const handler = createDaemonHandler({
    api,
    tracker,
    metrics: new DaemonMetrics(store, { activePulls: () => tracker.count('pull') }),
    logger: silentLogger(),
    root: '/var/lib/hostpull',
    resolve: (input) => parseReference(input),
    onPullDone: (r) => done.push(r),
    ...overrides,
  });
  const call = async (method: string, url: string, body?: unknown, res = new FakeResponse()) => {
    handler(request(method, url, body), res as unknown as ServerResponse);
    await res.finished;
    return res;
  };
  return { api, tracker, done, call };
}

const lines = (body: string) => body.trim().split('\n').map((l) => JSON.parse(l));

describe('createDaemonHandler', () => {
  it('GET /v1/health names the root it serves', async () => {
    const { call } = setup();
    const res = await call('GET', '/v1/health');
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body)).toMatchObject({ ok: true, root: '/var/lib/hostpull', pid: process.pid, activePulls: 0, stopping: false });
  });

  it('POST /v1/pull streams events as NDJSON, then the result', async () => {
    const { call, api, done } = setup();
    const res = await call('POST', '/v1/pull', { reference: '127.0.0.1:5000/hostpull:JDK11.0', concurrency: 2, unpack: false });
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('application/x-ndjson');
    const got = lines(res.body);
    expect(got.map((l) => l.type)).toEqual(['layer-start', 'layer-done', 'result']);
    expect(got[2].result.reference).toBe('127.0.0.1:5000/hostpull:JDK11.0');
    expect(api.pulls[0]!.options).toMatchObject({ concurrency: 2, unpack: false });
    expect(api.pulls[0]!.options.signal).toBeInstanceOf(AbortSignal);
    expect(done).toHaveLength(1);
  });

  it('a failing pull ends the stream with its code, message and hint', async () => {
    const { call, api, done } = setup();
    api.pullImpl = async () => {
      throw new HostpullError('MANIFEST_UNKNOWN', 'no such tag', { hint: 'check the tag' });
    };
    const res = await call('POST', '/v1/pull', { reference: '127.0.0.1:5000/hostpull:NOPE1.0' });
    expect(lines(res.body)).toEqual([{ type: 'error', error: { code: 'MANIFEST_UNKNOWN', message: 'no such tag', hint: 'check the tag' } }]);
    expect(done).toHaveLength(0);
  });

  it('an invalid reference travels as a stream error too', async () => {
    const { call } = setup();
    const res = await call('POST', '/v1/pull', { reference: 'UPPER CASE/bad ref' });
    const got = lines(res.body);
    expect(got).toHaveLength(1);
    expect(got[0].type).toBe('error');
  });

  it('rejects malformed bodies with 400 and our error JSON', async () => {
    const { call } = setup();
    for (const body of ['{not json', { reference: 'x', concurrency: 0 }, { reference: 'x', extra: true }, {}]) {
      const res = await call('POST', '/v1/pull', body);
      expect(res.status).toBe(400);
      expect(JSON.parse(res.body).error.code).toBe('BAD_REQUEST');
    }
  });

  it('unknown routes are 404, wrong methods 405', async () => {
    const { call } = setup();
    expect((await call('GET', '/v1/nope')).status).toBe(404);
    expect((await call('GET', '/v1/pull')).status).toBe(405);
  });

  it('POST /v1/gc passes the budget (or the daemon default) and dry-run', async () => {
    const { call, api } = setup({ maxStoreSize: 1000 });
    const a = await call('POST', '/v1/gc', { dryRun: true });
    expect(JSON.parse(a.body)).toMatchObject({ dryRun: true, maxStoreSize: 1000 });
    await call('POST', '/v1/gc', { maxStoreSize: 5, graceMs: 0 });
    // Each with the signal that a stop aborts it by.
    expect(api.gcCalls).toEqual([
      { maxStoreSize: 1000, dryRun: true, signal: expect.any(AbortSignal) },
      { maxStoreSize: 5, graceMs: 0, dryRun: false, signal: expect.any(AbortSignal) },
    ]);
  });

  it('GET /v1/images and /v1/stats answer JSON', async () => {
    const { call } = setup();
    expect(JSON.parse((await call('GET', '/v1/images')).body)).toEqual([]);
    expect(JSON.parse((await call('GET', '/v1/stats')).body).store).toEqual({ blobs: 0, blobBytes: 0, layers: 0, unpackedBytes: 0 });
  });

  it('DELETE /v1/images removes the named images, or answers 404 IMAGE_UNKNOWN and removes none', async () => {
    const { call, api } = setup();
    const missing = await call('DELETE', '/v1/images', { references: ['127.0.0.1:5000/hostpull:JDK17.0', '127.0.0.1:5000/hostpull:GO1.19'] });
    expect(missing.status).toBe(404);
    expect(JSON.parse(missing.body).error.code).toBe('IMAGE_UNKNOWN');
    expect(api.stored.has('127.0.0.1:5000/hostpull:JDK17.0')).toBe(true);
    const ok = await call('DELETE', '/v1/images', { references: ['127.0.0.1:5000/hostpull:JDK17.0'] });
    expect(ok.status).toBe(200);
    expect(JSON.parse(ok.body)).toEqual([{ reference: '127.0.0.1:5000/hostpull:JDK17.0', manifestDigest: DIGEST }]);
    expect(api.stored.size).toBe(0);
    expect((await call('DELETE', '/v1/images', { references: [] })).status).toBe(400);
  });

  it('GET /metrics is Prometheus text with every hostpull metric', async () => {
    const { call } = setup();
    const res = await call('GET', '/metrics');
    expect(String(res.headers['content-type'])).toMatch(/^text\/plain/);
    for (const name of [
      'hostpull_pulls_total',
      'hostpull_bytes_fetched_total',
      'hostpull_bytes_reused_total',
      'hostpull_layer_hits_total',
      'hostpull_layer_misses_total',
      'hostpull_layer_hit_ratio',
      'hostpull_pull_duration_seconds',
      'hostpull_active_mounts',
      'hostpull_store_bytes',
    ]) {
      expect(res.body).toMatch(new RegExp(`^# TYPE ${name} `, 'm'));
    }
  });

  it('a stopping daemon refuses new pulls with DAEMON_STOPPING', async () => {
    const { call, tracker } = setup();
    await tracker.drain(0);
    const res = await call('POST', '/v1/pull', { reference: '127.0.0.1:5000/hostpull:JDK11.0' });
    expect(lines(res.body)[0].error.code).toBe('DAEMON_STOPPING');
  });

  it('drain aborts a pull that outlives the timeout, and the stream says so', async () => {
    const { call, api, tracker } = setup();
    api.pullImpl = (_ref, o) =>
      new Promise((_resolve, reject) => {
        o.signal!.addEventListener('abort', () => reject(o.signal!.reason), { once: true });
      });
    const pending = call('POST', '/v1/pull', { reference: '127.0.0.1:5000/hostpull:JDK11.0' });
    while (tracker.count() === 0) await new Promise((r) => setImmediate(r));
    expect(await tracker.drain(10)).toEqual({ pull: 1 });
    const res = await pending;
    expect(lines(res.body)).toEqual([{ type: 'error', error: expect.objectContaining({ code: 'DAEMON_STOPPING' }) }]);
  });

  it('a stopping daemon refuses queries with 503 and closes the connection; health still answers', async () => {
    const { call, tracker } = setup();
    await tracker.drain(0);
    const res = await call('GET', '/v1/images');
    expect(res.status).toBe(503);
    expect(res.headers.connection).toBe('close');
    expect(JSON.parse(res.body).error.code).toBe('DAEMON_STOPPING');
    const health = await call('GET', '/v1/health');
    expect(JSON.parse(health.body)).toMatchObject({ ok: true, stopping: true, inFlight: 0 });
  });
});

/** Rootfs routes on a fake ContainerApi that records what happened to each id. */
class FakeContainers implements ContainerApi {
  log: string[] = [];
  live = new Set<string>();
  #n = 0;
  prepareImpl: (signal: AbortSignal) => Promise<void> = async () => undefined;
  async prepare(ref: ImageReference, _o: unknown, signal: AbortSignal): Promise<PreparedRootfs> {
    const id = `${++this.#n}`.padStart(12, '0');
    this.live.add(id);
    this.log.push(`prepare ${id}`);
    try {
      await this.prepareImpl(signal);
    } catch (err) {
      this.live.delete(id);
      this.log.push(`rollback-in-prepare ${id}`);
      throw err;
    }
    return { id, rootfs: `/r/${id}/rootfs`, bundle: `/r/${id}`, reference: formatReference(ref), manifestDigest: DIGEST };
  }
  async handOver(r: PreparedRootfs) {
    this.log.push(`handOver ${r.id}`);
  }
  async remove(id: string) {
    this.log.push(`remove ${id}`);
    return this.live.delete(id);
  }
}

describe('rootfs routes', () => {
  const ref = { reference: '127.0.0.1:5000/hostpull:JDK11.0' };

  it('POST hands the rootfs over, then answers 201 with its id', async () => {
    const containers = new FakeContainers();
    const { call } = setup({ containers });
    const res = await call('POST', '/v1/rootfs', ref);
    expect(res.status).toBe(201);
    const id = JSON.parse(res.body).id;
    expect(containers.log).toEqual([`prepare ${id}`, `handOver ${id}`]);
    expect(containers.live.has(id)).toBe(true);
  });

  it('a rootfs whose answer cannot reach the client is removed', async () => {
    const containers = new FakeContainers();
    const { call } = setup({ containers });
    const res = new FakeResponse();
    containers.prepareImpl = async () => {
      // The client hangs up while the rootfs is being prepared.
      res.destroyed = true;
      res.emit('close');
    };
    await call('POST', '/v1/rootfs', ref, res);
    await new Promise((r) => setImmediate(r));
    const id = '000000000001';
    expect(containers.log).toEqual([`prepare ${id}`, `remove ${id}`]);
    expect(containers.live.size).toBe(0);
  });

  it('a stop that outlives its timeout aborts a prepare, which leaves nothing, and answers 503', async () => {
    const containers = new FakeContainers();
    const { call, tracker } = setup({ containers });
    containers.prepareImpl = (signal) => new Promise((_r, reject) => signal.addEventListener('abort', () => reject(signal.reason), { once: true }));
    const pending = call('POST', '/v1/rootfs', ref);
    while (tracker.count('rootfs') === 0) await new Promise((r) => setImmediate(r));
    expect(await tracker.drain(10)).toEqual({ rootfs: 1 });
    const res = await pending;
    expect(res.status).toBe(503);
    expect(JSON.parse(res.body).error).toMatchObject({ code: 'DAEMON_STOPPING', message: 'the daemon stopped before this rootfs finished' });
    expect(containers.live.size).toBe(0);
  });

  it('a stop waits for a DELETE whatever its timeout, and DELETE is idempotent', async () => {
    const containers = new FakeContainers();
    const { call, tracker } = setup({ containers });
    const created = JSON.parse((await call('POST', '/v1/rootfs', ref)).body).id as string;
    let finishRemove!: () => void;
    const slow = new Promise<void>((r) => (finishRemove = r));
    const remove = containers.remove.bind(containers);
    containers.remove = async (id) => {
      await slow;
      return remove(id);
    };
    const pending = call('DELETE', '/v1/rootfs', { id: created });
    while (tracker.count('rootfs-remove') === 0) await new Promise((r) => setImmediate(r));
    const drained = tracker.drain(5);
    await new Promise((r) => setTimeout(r, 30));
    finishRemove();
    expect(await drained).toEqual({});
    expect((await pending).status).toBe(204);
    expect(containers.live.size).toBe(0);
    containers.remove = remove;
    const { call: call2 } = setup({ containers });
    expect((await call2('DELETE', '/v1/rootfs', { id: created })).status).toBe(204);
    expect((await call2('DELETE', '/v1/rootfs', { id: 'abcdefabcdef' })).status).toBe(204);
  });
});
