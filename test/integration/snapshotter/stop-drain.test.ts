/**
 * SIGTERM to `hostpull daemon --snapshotter-socket` while containerd's CRI pull has it fetching a
 * layer (driven here as containerd does: Prepare with the target and CRI labels, over gRPC on the
 * snapshotter socket), against a real registry behind a proxy that throttles the layer: within
 * --stop-timeout the fetch finishes, the layer is committed and containerd gets ALREADY_EXISTS,
 * while a new call meets UNAVAILABLE; past it the fetch is aborted, answered DAEMON_STOPPING
 * (UNAVAILABLE) and the next daemon resumes it with Range.
 */
import { credentials, status, type Client, type ServiceError } from '@grpc/grpc-js';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CRI_IMAGE_REF_LABEL, CRI_LAYER_DIGEST_LABEL, CRI_MANIFEST_DIGEST_LABEL, TARGET_REF_LABEL } from '../../../src/snapshotter/labels.js';
import { loadProto, serviceOf, SNAPSHOTS_PROTO, SNAPSHOTS_SERVICE } from '../../../src/snapshotter/proto.js';
import { buildLayer, packageFiles, pushImage, type BuiltLayer, type PushedImage } from '../../helpers/fixtures.js';
import { startProxy, type TestProxy } from '../../helpers/proxy.js';
import { startRegistry, type TestRegistry } from '../../helpers/registry.js';
import { useTempDir } from '../../helpers/tmp.js';
import { useTestDaemons, type TestDaemon } from '../daemon/daemon-process.js';

let registry: TestRegistry;
let slow: BuiltLayer;
let image: PushedImage;
const tempDir = useTempDir('snapshotter-stop');
const daemonOn = useTestDaemons();
const Snapshots = serviceOf(loadProto(SNAPSHOTS_PROTO), SNAPSHOTS_SERVICE);

beforeAll(async () => {
  registry = await startRegistry();
  // 8 MiB of files (about 6 MiB gzip), throttled to 1 MiB/s below: a fetch of several seconds.
  slow = buildLayer(packageFiles('SLOW1.0', { bytes: 8 * 1024 * 1024, seed: 21 }));
  image = await pushImage(registry.url, 'hostpull', 'SLOW1.0', [slow], { cmd: ['/bin/sh'] });
});

afterAll(async () => {
  await registry?.stop();
});

type Answer = { ok: unknown } | { code: status; details: string };

function call(client: Client, method: string, req: unknown): Promise<Answer> {
  return new Promise((resolve) => {
    const fn = (client as unknown as Record<string, (r: unknown, cb: (e: ServiceError | null, res: unknown) => void) => void>)[method]!;
    fn.call(client, req, (err, res) => resolve(err ? { code: err.code, details: err.details } : { ok: res }));
  });
}

/** The Prepare containerd's CRI plugin sends for the image's one layer (its chainID is its diffID). */
function prepareLayer(client: Client, proxy: TestProxy, n: number): Promise<Answer> {
  const labels = {
    [TARGET_REF_LABEL]: slow.diffId,
    [CRI_IMAGE_REF_LABEL]: `${proxy.host}/hostpull:SLOW1.0`,
    [CRI_MANIFEST_DIGEST_LABEL]: image.manifestDigest,
    [CRI_LAYER_DIGEST_LABEL]: slow.digest,
  };
  return call(client, 'Prepare', { key: `k8s.io/${n}/extract-${n} ${slow.diffId}`, parent: '', labels });
}

const logLines = (d: TestDaemon) =>
  d
    .log()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown> & { msg: string });

async function until(what: string, cond: () => boolean, timeoutMs = 30_000): Promise<void> {
  for (const deadline = Date.now() + timeoutMs; !cond(); ) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

interface Stack {
  proxy: TestProxy;
  dir: string;
  daemon: TestDaemon;
  client: Client;
  start(extra?: string[]): Promise<TestDaemon>;
  close(): Promise<void>;
}

async function stack(dirName: string, stopTimeout: string): Promise<Stack> {
  const proxy = await startProxy(registry.url);
  proxy.setFault((req) => (req.method === 'GET' && req.path.endsWith(`/blobs/${slow.digest}`) ? { throttleBytesPerSec: 1024 * 1024 } : undefined));
  const dir = await tempDir(dirName);
  const socket = join(dir, 'snapshotter.sock');
  const start = (extra: string[] = []) => daemonOn(dir, proxy.host, ['--snapshotter-socket', socket, ...extra]);
  const daemon = await start(['--stop-timeout', stopTimeout]);
  const client = new Snapshots(`unix:${socket}`, credentials.createInsecure());
  return {
    proxy,
    dir,
    daemon,
    client,
    start,
    close: async () => {
      client.close();
      await proxy.close();
    },
  };
}

const blobGets = (proxy: TestProxy) => proxy.requests.filter((q) => q.method === 'GET' && q.path.endsWith(`/blobs/${slow.digest}`));

describe('SIGTERM while the snapshotter fetches a layer for containerd', () => {
  it('within --stop-timeout: the fetch finishes, containerd gets ALREADY_EXISTS, a new call meets UNAVAILABLE, the daemon exits 0', async () => {
    const s = await stack('drain-finishes', '60s');
    try {
      const prepare = prepareLayer(s.client, s.proxy, 1);
      await until('the layer to stream', () => blobGets(s.proxy).some((q) => q.bytes > 512 * 1024));
      s.daemon.child.kill('SIGTERM');
      await until('the daemon to begin its stop', () => logLines(s.daemon).some((l) => l.msg === 'daemon stopping'));
      expect(await call(s.client, 'Stat', { key: slow.diffId })).toMatchObject({ code: status.UNAVAILABLE });

      const answer = await prepare;
      expect(answer, JSON.stringify(answer)).toMatchObject({ code: status.ALREADY_EXISTS });
      expect(await s.daemon.exited).toEqual({ code: 0, signal: null });
      const lines = logLines(s.daemon);
      expect(lines.find((l) => l.msg === 'daemon stopping')).toMatchObject({ snapshotterCalls: 1 });
      expect(lines.find((l) => l.msg === 'requests drained')).toMatchObject({ aborted: {} });
      expect(lines.some((l) => l.msg.startsWith('requests aborted at stop'))).toBe(false);
      expect(lines.filter((l) => (l['level'] as number) >= 50)).toEqual([]);
      // The layer was fetched once, whole.
      expect(blobGets(s.proxy)).toHaveLength(1);

      // The next daemon has it committed under the target: containerd's retry skips the layer.
      const again = await s.start();
      s.client.close();
      const client = new Snapshots(`unix:${join(s.dir, 'snapshotter.sock')}`, credentials.createInsecure());
      try {
        expect(await call(client, 'Stat', { key: slow.diffId })).toMatchObject({ ok: { info: { name: slow.diffId, kind: 'COMMITTED' } } });
        expect(await prepareLayer(client, s.proxy, 2)).toMatchObject({ code: status.ALREADY_EXISTS });
        expect(blobGets(s.proxy)).toHaveLength(1);
      } finally {
        client.close();
        expect(await again.stop()).toEqual({ code: 0, signal: null });
      }
    } finally {
      await s.close();
    }
  });

  it('past --stop-timeout: the fetch is aborted and answered DAEMON_STOPPING (UNAVAILABLE); the next daemon resumes it with Range', async () => {
    const s = await stack('drain-aborts', '300ms');
    try {
      const prepare = prepareLayer(s.client, s.proxy, 1);
      await until('the layer to stream', () => blobGets(s.proxy).some((q) => q.bytes > 512 * 1024));
      s.daemon.child.kill('SIGTERM');
      const answer = await prepare;
      expect(answer, JSON.stringify(answer)).toMatchObject({ code: status.UNAVAILABLE, details: expect.stringMatching(/^DAEMON_STOPPING: /) });
      expect(await s.daemon.exited).toEqual({ code: 0, signal: null });
      expect(logLines(s.daemon).find((l) => l.msg.startsWith('requests aborted at stop'))).toMatchObject({ aborted: { snapshot: 1 } });

      s.proxy.clearFaults();
      const again = await s.start();
      s.client.close();
      const client = new Snapshots(`unix:${join(s.dir, 'snapshotter.sock')}`, credentials.createInsecure());
      try {
        expect(await prepareLayer(client, s.proxy, 2)).toMatchObject({ code: status.ALREADY_EXISTS });
        const gets = blobGets(s.proxy);
        expect(gets).toHaveLength(2);
        expect(gets[1]!.range).toMatch(/^bytes=[1-9]\d*-$/);
      } finally {
        client.close();
        expect(await again.stop()).toEqual({ code: 0, signal: null });
      }
    } finally {
      await s.close();
    }
  });
});
