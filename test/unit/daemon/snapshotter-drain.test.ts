/**
 * The snapshotter's gRPC calls in the daemon's stop, in process (startDaemon with its snapshotter
 * socket, a real gRPC client, a fake registry whose layer blob is held half-sent until the test
 * lets it go): a CRI layer fetch in flight when the stop begins finishes within the stop timeout
 * and containerd gets its answer; a call that arrives while the daemon drains is answered
 * UNAVAILABLE; a fetch still running at the timeout is aborted and answered UNAVAILABLE with
 * DAEMON_STOPPING. The stop's log lines count the calls.
 */
import { credentials, Server, ServerCredentials, status, type Client, type ServiceError } from '@grpc/grpc-js';
import type { ServerResponse } from 'node:http';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { SystemdNotifier } from '../../../src/daemon/notify.js';
import { RequestTracker } from '../../../src/daemon/request-tracker.js';
import { startDaemon, type RunningDaemon } from '../../../src/daemon/start-daemon.js';
import { silentLogger, type Logger } from '../../../src/log.js';
import { digestOf } from '../../../src/oci/digest.js';
import { MediaType } from '../../../src/oci/index.js';
import { CRI_IMAGE_REF_LABEL, CRI_LAYER_DIGEST_LABEL, CRI_MANIFEST_DIGEST_LABEL, TARGET_REF_LABEL } from '../../../src/snapshotter/labels.js';
import { snapshotsService } from '../../../src/snapshotter/grpc-service.js';
import { loadProto, serviceOf, SNAPSHOTS_PROTO, SNAPSHOTS_SERVICE } from '../../../src/snapshotter/proto.js';
import type { Snapshotter } from '../../../src/snapshotter/snapshotter.js';
import { ContentStore } from '../../../src/store/content-store.js';
import { buildLayer, imageConfig, imageManifest } from '../../helpers/fixtures.js';
import { useTempDir } from '../../helpers/tmp.js';
import { startFakeServer, type FakeServer } from '../registry/fake-http.js';

// The daemon's unpack workers run the built worker (dist/, `npm run build:ts`): under vitest the
// default entry would be a src/ path with no .js beside it.
vi.mock('../../../src/util/build-files.js', async (importOriginal) => ({
  ...(await importOriginal<typeof import('../../../src/util/build-files.js')>()),
  buildFile: (module: string) => fileURLToPath(new URL(`../../../dist/${module}`, import.meta.url)),
}));

interface LogLine {
  level: string;
  msg: string;
  obj: Record<string, unknown>;
}

/** A Logger that keeps every line, to read the stop's lines back. */
function recordingLogger(lines: LogLine[]): Logger {
  const at =
    (level: string) =>
    (obj: unknown, msg?: unknown): void =>
      void lines.push(typeof obj === 'string' ? { level, msg: obj, obj: {} } : { level, msg: String(msg ?? ''), obj: (obj ?? {}) as Record<string, unknown> });
  const logger = { level: 'debug', format: 'json', trace: at('trace'), debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error'), fatal: at('fatal'), child: () => logger };
  return logger as unknown as Logger;
}

/** One image of one layer, served by a fake registry that sends the layer's first half, then waits for `release()`. */
interface HeldRegistry {
  server: FakeServer;
  labels: Record<string, string>;
  /** The chainID of the layer (its diffID: it is the bottom layer). */
  target: string;
  diffId: string;
  /** Resolves once the layer's first half was sent. */
  streaming: Promise<void>;
  release(): void;
}

async function heldRegistry(): Promise<HeldRegistry> {
  const layer = buildLayer([{ path: 'opt/slow/data', content: Buffer.alloc(256 * 1024, 7) }], { compression: 'none' });
  const config = imageConfig([layer]);
  const manifest = imageManifest(config, [layer]);
  const blobs = new Map<string, Buffer>([
    [digestOf(config), config],
    [layer.digest, layer.blob],
  ]);
  let released!: () => void;
  const release = new Promise<void>((r) => (released = r));
  let onStreaming!: () => void;
  const streaming = new Promise<void>((r) => (onStreaming = r));
  const send = (res: ServerResponse, type: string, body: Buffer, head: boolean) => {
    res.writeHead(200, { 'content-type': type, 'content-length': body.length, 'docker-content-digest': digestOf(body) });
    res.end(head ? undefined : body);
  };
  const server = await startFakeServer(async (req, res) => {
    const path = new URL(req.url!, 'http://x').pathname;
    const head = req.method === 'HEAD';
    if (path === '/v2/' || path === '/v2') return send(res, 'application/json', Buffer.from('{}'), head);
    const m = /^\/v2\/slow\/(manifests|blobs)\/(.+)$/.exec(path);
    if (m?.[1] === 'manifests' && m[2] === digestOf(manifest)) return send(res, MediaType.OciManifest, manifest, head);
    const blob = m?.[1] === 'blobs' ? blobs.get(m[2]!) : undefined;
    if (!blob) {
      res.writeHead(404).end();
      return;
    }
    if (head || m![2] !== layer.digest) return send(res, 'application/octet-stream', blob, head);
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': blob.length });
    res.write(blob.subarray(0, blob.length / 2));
    onStreaming();
    await release;
    res.end(blob.subarray(blob.length / 2));
  });
  return {
    server,
    target: layer.diffId,
    diffId: layer.diffId,
    labels: {
      [TARGET_REF_LABEL]: layer.diffId,
      [CRI_IMAGE_REF_LABEL]: `${server.host}/slow:1`,
      [CRI_MANIFEST_DIGEST_LABEL]: digestOf(manifest),
      [CRI_LAYER_DIGEST_LABEL]: layer.digest,
    },
    streaming,
    release: () => released(),
  };
}

/** A unary call's answer: the response, or the gRPC error's code and details. */
function call(client: Client, method: string, req: unknown): Promise<{ ok: unknown } | { code: status; details: string }> {
  return new Promise((resolve) => {
    const fn = (client as unknown as Record<string, (r: unknown, cb: (e: ServiceError | null, res: unknown) => void) => void>)[method]!;
    fn.call(client, req, (err, res) => resolve(err ? { code: err.code, details: err.details } : { ok: res }));
  });
}

describe('the daemon stop drains snapshotter calls', () => {
  const tmp = useTempDir('snapshotter-drain');
  const cleanups: Array<() => Promise<unknown> | unknown> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  async function start(stopTimeoutMs: number) {
    const dir = await tmp();
    const lines: LogLine[] = [];
    const registry = await heldRegistry();
    cleanups.push(() => registry.server.close());
    cleanups.push(() => registry.release());
    const daemon: RunningDaemon = await startDaemon({
      root: join(dir, 'root'),
      socketPath: join(dir, 'hostpull.sock'),
      snapshotterSocket: join(dir, 'snapshotter.sock'),
      logger: recordingLogger(lines),
      stopTimeoutMs,
      handleSignals: false,
      notifier: new SystemdNotifier({ socket: undefined }),
    });
    cleanups.push(() => daemon.stop());
    const Snapshots = serviceOf(loadProto(SNAPSHOTS_PROTO), SNAPSHOTS_SERVICE);
    const client = new Snapshots(`unix:${join(dir, 'snapshotter.sock')}`, credentials.createInsecure());
    cleanups.push(() => client.close());
    return { dir, lines, registry, daemon, client };
  }

  const logged = (lines: LogLine[], msg: string) => lines.find((l) => l.msg.startsWith(msg))?.obj;

  it('a layer fetch in flight at the stop finishes within the stop timeout and its answer reaches containerd; a call meanwhile is UNAVAILABLE', async () => {
    const { dir, lines, registry, daemon, client } = await start(20_000);
    const key = `k8s.io/1/extract-1 ${registry.target}`;
    const prepare = call(client, 'Prepare', { key, parent: '', labels: registry.labels });
    let early: unknown;
    void prepare.then((a) => (early = a));
    await registry.streaming;
    const stopped = daemon.stop('test');
    // Long enough for a stop that cuts the calls at once to have done so.
    await new Promise((r) => setTimeout(r, 300));
    expect(early, 'the fetch in flight was answered before it could finish').toBeUndefined();

    // A new call while the daemon drains: refused, as unavailable (a new connection finds no server).
    const late = new (serviceOf(loadProto(SNAPSHOTS_PROTO), SNAPSHOTS_SERVICE))(`unix:${join(dir, 'snapshotter.sock')}`, credentials.createInsecure());
    cleanups.push(() => late.close());
    const refused = await call(late, 'Stat', { key: registry.target });
    expect(refused).toMatchObject({ code: status.UNAVAILABLE });

    registry.release();
    // The layer was fetched and committed under its target: ALREADY_EXISTS is how containerd
    // learns that the snapshotter has it (and skips downloading and applying it).
    const answer = await prepare;
    expect(answer, JSON.stringify(answer)).toMatchObject({ code: status.ALREADY_EXISTS });
    await stopped;

    expect(logged(lines, 'daemon stopping')).toMatchObject({ inFlight: 1, snapshotterCalls: 1, byKind: { snapshot: 1 } });
    expect(logged(lines, 'requests drained')).toMatchObject({ inFlight: { snapshot: 1 }, aborted: {} });
    expect(logged(lines, 'requests aborted at stop')).toBeUndefined();
    // The commit came before the store closed: the layer and its snapshot are there.
    const store = await ContentStore.open(join(dir, 'root'));
    try {
      expect(store.snapshots.get(registry.target)).toMatchObject({ kind: 'committed', diffId: registry.diffId });
      expect(store.layers.get(registry.diffId as never)).toBeDefined();
    } finally {
      store.close();
    }
  });

  it('a call on the connection containerd holds is answered UNAVAILABLE while the daemon drains', async () => {
    const { registry, daemon, client } = await start(20_000);
    // The connection is open (a first call went through) and a fetch keeps the drain going.
    expect(await call(client, 'Stat', { key: 'nothing' })).toMatchObject({ code: status.NOT_FOUND });
    const prepare = call(client, 'Prepare', { key: `k8s.io/1/extract-2 ${registry.target}`, parent: '', labels: registry.labels });
    await registry.streaming;
    const stopped = daemon.stop('test');
    expect(await call(client, 'Stat', { key: 'nothing' })).toMatchObject({ code: status.UNAVAILABLE });
    registry.release();
    expect(await prepare).toMatchObject({ code: status.ALREADY_EXISTS });
    await stopped;
  });

  it('a layer fetch still running at the stop timeout is aborted and answered DAEMON_STOPPING (UNAVAILABLE)', async () => {
    const { dir, lines, registry, daemon, client } = await start(200);
    const key = `k8s.io/1/extract-3 ${registry.target}`;
    const prepare = call(client, 'Prepare', { key, parent: '', labels: registry.labels });
    await registry.streaming;
    const t0 = Date.now();
    await daemon.stop('test');
    const answer = await prepare;
    expect(answer, JSON.stringify(answer)).toMatchObject({ code: status.UNAVAILABLE, details: expect.stringMatching(/^DAEMON_STOPPING: /) });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(150);
    expect(logged(lines, 'requests aborted at stop')).toMatchObject({ aborted: { snapshot: 1 } });
    expect(logged(lines, 'requests drained')).toMatchObject({ inFlight: { snapshot: 1 }, aborted: { snapshot: 1 } });
    // Not left to containerd, not committed: the next pull asks again.
    const store = await ContentStore.open(join(dir, 'root'));
    try {
      expect(store.snapshots.get(registry.target)).toBeUndefined();
      expect(store.snapshots.get(key)).toBeUndefined();
    } finally {
      store.close();
    }
  });
});

describe('snapshotsService with the daemon\'s tracker', () => {
  const tmp = useTempDir('snapshotter-track');

  it('counts a call as in flight, and refuses one that reaches it once the drain began with DAEMON_STOPPING (UNAVAILABLE)', async () => {
    const socket = join(await tmp(), 's.sock');
    const tracker = new RequestTracker();
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const snapshotter = { stat: () => ({ name: 'x', parent: '', kind: 'committed', createdAt: 0, updatedAt: 0, labels: {} }), remove: () => held } as unknown as Snapshotter;
    const server = new Server();
    server.addService(serviceOf(loadProto(SNAPSHOTS_PROTO), SNAPSHOTS_SERVICE).service, snapshotsService(snapshotter, silentLogger(), { track: (_method, fn) => tracker.run('snapshot', fn) }));
    await new Promise<void>((resolve, reject) => server.bindAsync(`unix:${socket}`, ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())));
    const client = new (serviceOf(loadProto(SNAPSHOTS_PROTO), SNAPSHOTS_SERVICE))(`unix:${socket}`, credentials.createInsecure());
    try {
      const removing = call(client, 'Remove', { key: 'x' });
      for (let i = 0; i < 100 && tracker.count('snapshot') === 0; i++) await new Promise((r) => setTimeout(r, 10));
      expect(tracker.count('snapshot')).toBe(1);
      const drained = tracker.drain(10_000);
      // The server still takes calls here (as in the instant before the listener stops accepting).
      expect(await call(client, 'Stat', { key: 'x' })).toMatchObject({ code: status.UNAVAILABLE, details: expect.stringMatching(/^DAEMON_STOPPING: /) });
      release();
      expect(await removing).toEqual({ ok: {} });
      expect(await drained).toEqual({});
    } finally {
      client.close();
      server.forceShutdown();
    }
  });
});
