/**
 * The CLI's client against the real handler on a real unix socket (listenUnixHttp), over a fake
 * HostApi whose GC and removals take as long as the test says: which timeout governs which
 * exchange is only visible through the whole path.
 */
import type { ServerResponse } from 'node:http';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectDaemon } from '../../../src/daemon/client.js';
import { createDaemonHandler } from '../../../src/daemon/handler.js';
import type { HostApi, HostGcOptions } from '../../../src/daemon/host-api.js';
import { listenUnixHttp, type Listener } from '../../../src/daemon/listener.js';
import { DaemonMetrics } from '../../../src/daemon/metrics.js';
import { RequestTracker } from '../../../src/daemon/request-tracker.js';
import type { GcReport } from '../../../src/gc/index.js';
import { silentLogger } from '../../../src/log.js';
import type { Digest } from '../../../src/oci/digest.js';
import { parseReference } from '../../../src/oci/reference.js';
import { ContentStore } from '../../../src/store/content-store.js';
import { makeTempDir, removeTempDir } from '../../helpers/tmp.js';

/** The health probe's timeout in these tests; every slow answer below takes several times this. */
const PROBE_MS = 100;
const SLOW_MS = 5 * PROBE_MS;
const DIGEST = `sha256:${'b'.repeat(64)}` as Digest;

function report(options: HostGcOptions): GcReport {
  return {
    dryRun: options.dryRun ?? false,
    maxStoreSize: options.maxStoreSize ?? null,
    imagesRemoved: ['127.0.0.1:5000/hostpull:old'],
    layersRemoved: 3,
    blobsRemoved: 2,
    bytesBefore: 300,
    bytesAfter: 100,
    freedBytes: 200,
    overBudget: false,
    skipped: 0,
    partialsRemoved: 0,
    partialBytesFreed: 0,
  };
}

/** Answers after `delayMs`, as a GC over a big store or a removal waiting for the write lock does. */
class SlowApi implements HostApi {
  readonly mode = 'local' as const;
  delayMs = SLOW_MS;
  async pull(): Promise<never> {
    throw new Error('not used');
  }
  async images() {
    return [];
  }
  async stats(): Promise<never> {
    throw new Error('not used');
  }
  async gc(options: HostGcOptions = {}) {
    await sleep(this.delayMs);
    return report(options);
  }
  async removeImages(references: readonly string[]) {
    await sleep(this.delayMs);
    return references.map((reference) => ({ reference, manifestDigest: DIGEST }));
  }
  async close() {}
}

let dir: string;
let store: ContentStore;
let listener: Listener;
let socketPath: string;
const api = new SlowApi();
/** Set by a test to hold /v1/health back, as a daemon that accepts but does not answer. */
let healthDelayMs = 0;

beforeAll(async () => {
  dir = await makeTempDir('daemon-client');
  store = await ContentStore.open(join(dir, 'root'));
  const tracker = new RequestTracker();
  const handler = createDaemonHandler({
    api,
    tracker,
    metrics: new DaemonMetrics(store, { activePulls: () => tracker.count('pull') }),
    logger: silentLogger(),
    root: join(dir, 'root'),
    resolve: (input) => parseReference(input),
  });
  socketPath = join(dir, 'd.sock');
  listener = await listenUnixHttp({
    path: socketPath,
    mode: 0o600,
    handler: (req, res: ServerResponse) => {
      if (healthDelayMs > 0 && req.url === '/v1/health') setTimeout(() => handler(req, res), healthDelayMs);
      else handler(req, res);
    },
  });
});
afterAll(async () => {
  await listener?.close();
  store?.close();
  await removeTempDir(dir);
});

describe('connectDaemon', () => {
  it('a GC that takes longer than the health probe gets its answer, not DAEMON_GONE', async () => {
    const client = await connectDaemon({ socketPath, root: join(dir, 'root'), timeoutMs: PROBE_MS });
    expect(client).toBeDefined();
    try {
      const started = Date.now();
      const answer = await client!.gc({ maxStoreSize: 100, graceMs: 0 });
      expect(Date.now() - started).toBeGreaterThanOrEqual(SLOW_MS - 20);
      expect(answer).toEqual(report({ maxStoreSize: 100 }));
    } finally {
      await client!.close();
    }
  });

  it('a removal of images that takes longer than the health probe gets its answer', async () => {
    const client = await connectDaemon({ socketPath, root: join(dir, 'root'), timeoutMs: PROBE_MS });
    try {
      expect(await client!.removeImages(['127.0.0.1:5000/hostpull:old'])).toEqual([{ reference: '127.0.0.1:5000/hostpull:old', manifestDigest: DIGEST }]);
    } finally {
      await client!.close();
    }
  });

  it('the probe itself still gives up after its timeout: a daemon that does not answer health is no daemon', async () => {
    healthDelayMs = SLOW_MS;
    try {
      const started = Date.now();
      expect(await connectDaemon({ socketPath, root: join(dir, 'root'), timeoutMs: PROBE_MS })).toBeUndefined();
      expect(Date.now() - started).toBeLessThan(SLOW_MS);
    } finally {
      healthDelayMs = 0;
    }
  });
});
