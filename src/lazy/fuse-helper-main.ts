/**
 * Process entry of the FUSE helper: `fork(dist/lazy/fuse-helper-main.js)` by {@link FuseHelper}
 * only. A separate process because the FUSE server (fuse-session.ts) answers every request on the
 * event loop of the process that mounted it: a hostpull process that mounted its own lazy layers
 * would deadlock the moment it made a synchronous call that reaches them (mount(2) of the overlay
 * over them stats the lower dirs), and a busy unpack would stall the container's reads. Here
 * nothing else runs.
 *
 * When the parent goes away (its IPC channel closes: exit, crash, kill -9), every mount is
 * unmounted (lazily, so a container still using one gets ENOTCONN rather than a hang) and the
 * helper exits: a FUSE mount never outlives the process that is responsible for it.
 */
import { mkdir } from 'node:fs/promises';
import { errorToJson } from '../errors.js';
import { createLogger, type LogFormat, type LogLevel } from '../log.js';
import type { Digest } from '../oci/index.js';
import { RegistryClient } from '../registry/index.js';
import { mountFuse, type MountedFuse } from './fuse-mount.js';
import { readDeadlineMs, spanClientOptions } from './fetch-policy.js';
import type { FetchPolicy, HelperMessage, HelperRequest, MountedView, MountSpec } from './helper-protocol.js';
import { LazyLayer } from './lazy-layer.js';
import { registrySpanSource } from './registry-span-source.js';
import { ServedViews } from './served-views.js';

interface Served {
  layer: LazyLayer;
  fuse: MountedFuse;
}

function send(m: HelperMessage): void {
  process.send?.(m);
}

/** The format of the lines of the process that started this one (FuseHelper.start): json unless it says text. */
const LOG_FORMAT: LogFormat = process.env.HOSTPULL_LAZY_LOG_FORMAT === 'text' ? 'text' : 'json';

async function main(): Promise<void> {
  const logger = createLogger((process.env.HOSTPULL_LAZY_LOG_LEVEL ?? 'warn') as LogLevel, 'hostpull-lazy', LOG_FORMAT);
  const clients = new Map<string, RegistryClient>();
  // One view per layer, counted by the mount requests that share it (see served-views.ts).
  const served = new ServedViews<Served>(async (s) => {
    try {
      await s.layer.close();
    } finally {
      await s.fuse.unmount();
    }
  });

  const clientFor = (insecure: string[], policy: FetchPolicy): RegistryClient => {
    const key = `${insecure.join(',')}/${policy.attempts}/${policy.attemptTimeoutMs}`;
    let c = clients.get(key);
    // The one retry policy, capped so that a span gives up within the read deadline. Over
    // node:http, compiled into Node: undici's Agent and its wasm parser were ~30-40 ms of
    // compiling in this process's first 0.2 s, beside the container it serves starting on the same
    // two cores, for no gain on the ~70 requests of a start. Alternated (bench/lazy-ab.mjs, 8
    // rounds), a second node's `mvn -v` came 723 -> 694 ms; a first node's 912 vs 918 ms.
    if (!c) clients.set(key, (c = new RegistryClient({ insecureRegistries: insecure, logger, userAgent: 'hostpull-lazy/0.1', httpClient: 'node', ...spanClientOptions(policy) })));
    return c;
  };

  // A layer's learned prefetch: with its mount when the parent had the list by then, else on the `prefetch` request.
  const startPrefetch = (layer: LazyLayer, where: string, spans: readonly number[]): void => {
    if (!layer.prefetching) logger.info({ layer: where, prefetch: spans.length }, 'learned prefetch started');
    layer.prefetchInOrder(spans).catch((err: unknown) => logger.warn({ layer: where, err: (err as Error).message }, 'prefetch failed; reads fetch what they need'));
  };

  const open = async (spec: MountSpec, where: string): Promise<Served> => {
    const layer = await LazyLayer.fromFile(spec.tocFile, spec.tocDigest as Digest, { digest: spec.key as Digest, diffId: spec.diffId as Digest, size: spec.size }, {
      where,
      tree: { claim: spec.claim, maxExpansionRatio: spec.maxExpansionRatio },
      source: registrySpanSource(clientFor(spec.source.insecureRegistries, spec.fetch), { registry: spec.source.registry, repository: spec.source.repository }, spec.key as Digest),
      cacheDir: spec.cacheDir,
      // Beside the mount point: removed with it, and with the helper's dir if the helper dies.
      copiesDir: `${spec.mountpoint}.copies`,
      fetch: spec.fetch,
      logger,
    });
    await mkdir(spec.mountpoint, { recursive: true, mode: 0o700 });
    const bound = readDeadlineMs(spec.fetch) + 5000;
    const fuse = await mountFuse(spec.mountpoint, layer.handlers, { opTimeoutMs: bound, logger });
    logger.info({ layer: where, mountpoint: spec.mountpoint, entries: layer.tree.size, spans: layer.toc.spans.length }, 'lazy layer mounted');
    return { layer, fuse };
  };

  // A request for a layer served (or being mounted) already shares that view and its mount point.
  const mount = async (spec: MountSpec): Promise<MountedView> => {
    const where = `${spec.source.registry}/${spec.source.repository}@${spec.key}`;
    const { layer, fuse } = await served.acquire(spec.key, () => open(spec, where));
    if (spec.prefetch?.length) startPrefetch(layer, where, spec.prefetch);
    return { mountpoint: fuse.mountpoint, ownedPaths: layer.tree.ownedPaths };
  };

  const handle = async (req: HelperRequest): Promise<unknown> => {
    switch (req.type) {
      case 'mount':
        return mount(req.spec);
      case 'unmount':
        return served.release(req.key);
      case 'prefetch': {
        // Learned prefetch: the spans the image's first start read, fetched now in that order; answered at once.
        const s = served.get(req.key);
        if (!s) throw new Error(`layer ${req.key} is not mounted`);
        startPrefetch(s.layer, req.key, req.indexes);
        return undefined;
      }
      case 'spans': {
        const s = served.get(req.key);
        if (!s) throw new Error(`layer ${req.key} is not mounted`);
        await s.layer.reader.prefetch(req.indexes, 'background');
        await s.layer.fetcher.stored(req.indexes);
        return undefined;
      }
      case 'stats': {
        const s = served.get(req.key);
        return s ? s.layer.stats() : undefined;
      }
    }
  };

  process.on('message', (msg: HelperRequest) => {
    handle(msg).then(
      (value) => send({ type: 'result', id: msg.id, ok: true, ...(value !== undefined ? { value } : {}) }),
      (err: unknown) =>
        send({
          type: 'result',
          id: msg.id,
          ok: false,
          error: errorToJson(err, 'LAZY_HELPER_FAILED'),
        }),
    );
  });

  let stopping = false;
  const shutdown = async (why: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    logger.info({ why, mounts: served.size }, 'lazy helper stopping');
    await served.closeAll();
    await Promise.allSettled([...clients.values()].map((c) => c.close()));
    process.exit(why === 'crash' ? 1 : 0);
  };
  process.once('disconnect', () => void shutdown('parent gone'));
  process.once('SIGTERM', () => void shutdown('SIGTERM'));
  // Whatever goes wrong here, the mounts go first: a FUSE mount whose server died is a stale
  // mount (ENOTCONN) for every process that looks at it. A parent whose stderr went away (a
  // closed pipe) must not take this process down with it either.
  process.stderr.on('error', () => undefined);
  process.on('uncaughtException', (err) => {
    if (stopping) return;
    logger.error({ err }, 'lazy helper failed; unmounting its layers');
    void shutdown('crash');
  });
  send({ type: 'ready', pid: process.pid });
}

void main().catch((err: unknown) => {
  // The parent sees the exit (LAZY_HELPER_FAILED at start, LAZY_HELPER_GONE later); the log says why.
  createLogger('error', 'hostpull-lazy', LOG_FORMAT).error({ err }, 'lazy helper failed');
  process.exit(1);
});


