import { mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HostpullError } from '../errors.js';
import { silentLogger, type Logger } from '../log.js';
import type { Digest } from '../oci/index.js';
import { Puller, type PullResult } from '../pull/index.js';
import { RegistryClient } from '../registry/index.js';
import { canonicalTag, startServer, type RunningServer } from '../server/index.js';
import { ContentStore } from '../store/index.js';
import { mapLimit } from '../util/index.js';
import { HitRateAccount, type HitRates, type SeriesPoint } from './accounting.js';
import { catalogIndex, syntheticCatalog, type BenchCatalog } from './catalog.js';
import { packageDir } from './content.js';
import { diskUsage } from './disk-usage.js';
import { BASE_TAG, BENCH_REPOS, BenchImageBuilder, pushImage } from './images.js';
import { LocalRegistry, servedBlobBytes, servedBytes, type RegistryAccess } from './local-registry.js';
import { hashSeed, mulberry32, randomInt } from './prng.js';
import { catalogFromTrace, parseTrace } from './trace.js';
import { generateWorkload, type BenchRequest } from './workload.js';

export type ApproachName = 'hostpull' | 'flattened' | 'stacked';

export interface BenchOptions {
  /** Packages in the synthetic catalog. Default 6. */
  packages?: number;
  /** Versions per package. Default 3. */
  versions?: number;
  /** Requests in the synthetic workload. Default 20. */
  requests?: number;
  /** Seed of catalog, workload and content. Default 1. */
  seed?: number;
  /** Size scale, see SyntheticCatalogOptions.scale. Default 0.005. */
  scale?: number;
  /** Zipf exponent of package popularity. Default 1. */
  zipfExponent?: number;
  /** Code names per tag. Default 1…5. */
  minCodes?: number;
  maxCodes?: number;
  /** A trace file (one tag per line, optional timestamp) instead of the synthetic workload. */
  traceFile?: string | undefined;
  /** Node stores the requests are spread over. Default 1. */
  nodes?: number;
  /** How requests go to nodes. Default round-robin. */
  assign?: 'round-robin' | 'random';
  /** Build and pull the traditional baselines. Default true. */
  baselines?: boolean;
  /** Unpack layers as a node would (default true); false only stores the blobs. */
  unpack?: boolean;
  /** Parent of the bench's temp dir. Default os.tmpdir(). */
  tmpDir?: string;
  /** Keep the work dir (registry data, stores) instead of removing it. Default false. */
  keep?: boolean;
  /** docker-registry binary. Default /usr/bin/docker-registry. */
  registryBinary?: string;
  logger?: Logger;
  signal?: AbortSignal;
  /** Called after each pull, e.g. for a progress line. */
  onProgress?: (p: { approach: ApproachName; done: number; total: number }) => void;
}

/** One request as an approach served it. */
export interface RequestRecord {
  tag: string;
  node: number;
  layers: number;
  layerHits: number;
  bytesFetched: number;
  registryBytes: number;
  ms: number;
  storeBytes: number;
}

export interface ApproachResult extends HitRates {
  name: ApproachName;
  /** Distinct images this approach needed in the registry (composites, or pushed baseline images). */
  images: number;
  /** Distinct layer blobs across those images, and their total compressed size. */
  distinctLayers: number;
  distinctLayerBytes: number;
  /**
   * Pulls where the client's count and the registry's disagreed. For baselines the whole pull is
   * compared; for hostpull its blob bytes (the composite manifest comes from the server's memory).
   */
  byteMismatches: number;
  /** Blob bytes (config + layers) the client fetched, and what the registry log shows for those digests. */
  blobBytesFetched: number;
  registryBlobBytes: number;
  series: SeriesPoint[];
  requestsDetail: RequestRecord[];
}

export interface BenchResult {
  seed: number;
  source: 'synthetic' | 'trace';
  nodes: number;
  unpack: boolean;
  catalog: { packages: number; versions: number; packageBytes: number; baseBytes: number };
  workload: { requests: number; distinctTags: number; tags: string[] };
  /** hostpull's totals, at the top level for scripts: */
  byteHitRate: number;
  layerHitRate: number;
  bytesFetched: number;
  /** What the registry served during hostpull's replay (server reads of package images included). */
  registryBytes: number;
  /** Part of registryBytes: what the registry served while the server synthesised the composites. */
  serverPrimeBytes: number;
  approaches: Partial<Record<ApproachName, ApproachResult>> & { hostpull: ApproachResult };
  /** Wall time of the whole run and of its parts (build+push, each replay). */
  durationMs: number;
  phasesMs: Record<string, number>;
}

const NAMESPACE = 'hostpull';
const PUSH_CONCURRENCY = 4;

interface Target {
  registry: string;
  repository: string;
  tag: (req: BenchRequest) => string;
}

/** What the bench put into its registry: the images each approach pulls, by tag, as layer digests. */
interface PushedImages {
  layersOf: Map<ApproachName, Map<string, Digest[]>>;
  /** Compressed size of every layer blob pushed. */
  sizes: Map<Digest, number>;
  catalogFile: string;
}

/**
 * `hostpull bench`: builds the catalog's package images into a registry of its own, serves
 * composites in front of it, and replays the workload against fresh node stores with hostpull and
 * with both traditional baselines, counting bytes on both ends of the wire.
 */
export async function runBench(options: BenchOptions = {}): Promise<BenchResult> {
  const started = performance.now();
  const logger = options.logger ?? silentLogger();
  const seed = options.seed ?? 1;
  const nodes = options.nodes ?? 1;
  if (!Number.isInteger(nodes) || nodes < 1 || nodes > 1000) throw new HostpullError('USAGE', `--nodes must be an integer in 1…1000, got ${nodes}`);
  const unpack = options.unpack ?? true;
  const { catalog, workload, source } = await prepareWorkload(options, seed);
  const versions = catalogIndex(catalog);
  for (const r of workload) for (const c of r.codes) if (!versions.has(c)) throw new HostpullError('TRACE_INVALID', `code name ${c} is not in the catalog`);

  const phasesMs: Record<string, number> = {};
  const work = await mkdtemp(join(options.tmpDir ?? tmpdir(), 'hostpull-bench-'));
  let registry: LocalRegistry | undefined;
  let server: RunningServer | undefined;
  const client = new RegistryClient({ logger, retries: 1 });
  try {
    registry = await LocalRegistry.start({ dir: join(work, 'registry'), ...(options.registryBinary ? { binary: options.registryBinary } : {}), ...(options.signal ? { signal: options.signal } : {}) });
    const tags = [...new Set(workload.map((r) => canonicalTag(r.codes)))];
    const baselines = options.baselines ?? true;
    const pushed = await pushImages({ client, registry, builder: new BenchImageBuilder(catalog, versions), versions, workload, tags, baselines, work, signal: options.signal });
    server = await startServer({ upstream: registry.url, port: 0, catalogFile: pushed.catalogFile, base: `${BENCH_REPOS.base}:${BASE_TAG}`, namespace: NAMESPACE, cacheTtlMs: 3_600_000, logger });

    const targets: Array<[ApproachName, Target]> = [['hostpull', { registry: server.host, repository: NAMESPACE, tag: (r) => r.codes.join('-') }]];
    if (baselines) {
      targets.push(['flattened', { registry: registry.host, repository: BENCH_REPOS.flattened, tag: (r) => canonicalTag(r.codes) }]);
      targets.push(['stacked', { registry: registry.host, repository: BENCH_REPOS.stacked, tag: (r) => canonicalTag(r.codes) }]);
    }
    // The server synthesises a composite on its first request and pushes it upstream (tens to
    // hundreds of ms against docker-registry); a fleet's server has done that long before most
    // nodes ask. Resolve each distinct tag once up front so pull times measure the node, and
    // count what the registry served meanwhile (the server reading package manifests and configs)
    // as hostpull egress; time and bytes are also reported apart (phasesMs.serverPrime, serverPrimeBytes).
    const primeMark = await registry.mark();
    const tPrime = performance.now();
    await primeServer(server.url, NAMESPACE, tags, options.signal);
    phasesMs.serverPrime = Math.round(performance.now() - tPrime);
    const primeBytes = servedBytes(await registry.since(primeMark));
    phasesMs.prepare = Math.round(performance.now() - started);

    const assign = nodeAssignment(workload.length, nodes, options.assign ?? 'round-robin', seed);
    const approaches: Partial<Record<ApproachName, ApproachResult>> = {};
    for (const [name, target] of targets) {
      const t0 = performance.now();
      const result = await replay({ name, target, workload, assign, nodes, unpack, work, registry, client, logger, options });
      if (name === 'hostpull') result.registryBytes += primeBytes;
      approaches[name] = { ...result, ...imageFootprint(pushed, name) };
      phasesMs[name] = Math.round(performance.now() - t0);
    }
    const hp = approaches.hostpull!;
    return {
      seed,
      source,
      nodes,
      unpack,
      catalog: {
        packages: catalog.packages.length,
        versions: versions.size,
        packageBytes: [...versions.values()].reduce((n, v) => n + v.bytes, 0),
        baseBytes: catalog.baseBytes,
      },
      workload: { requests: workload.length, distinctTags: tags.length, tags: workload.map((r) => canonicalTag(r.codes)) },
      byteHitRate: hp.byteHitRate,
      layerHitRate: hp.layerHitRate,
      bytesFetched: hp.bytesFetched,
      registryBytes: hp.registryBytes,
      serverPrimeBytes: primeBytes,
      approaches: { ...approaches, hostpull: hp },
      durationMs: Math.round(performance.now() - started),
      phasesMs,
    };
  } finally {
    await server?.close().catch((err: unknown) => logger.warn({ err }, 'closing the bench server'));
    await client.close().catch(() => undefined);
    await registry?.stop();
    if (!options.keep) await rm(work, { recursive: true, force: true });
    else logger.info({ work }, 'bench work dir kept');
  }
}

/**
 * Pushes everything the replays pull before any replay starts, so the access-log windows of the
 * replays hold only pulls: the base and the package images the workload uses (and a static
 * catalog naming them, for the server), and, with `baselines`, one flattened and one stacked image
 * per distinct tag. Pushes overlap ({@link PUSH_CONCURRENCY} at a time): each is a few small round
 * trips to docker-registry, and one after the other they were most of a small run's set-up time.
 */
async function pushImages(input: {
  client: RegistryClient;
  registry: LocalRegistry;
  builder: BenchImageBuilder;
  versions: ReturnType<typeof catalogIndex>;
  workload: BenchRequest[];
  tags: string[];
  baselines: boolean;
  work: string;
  signal: AbortSignal | undefined;
}): Promise<PushedImages> {
  const { client, registry, builder, versions, tags, signal } = input;
  await pushImage(client, registry.host, BENCH_REPOS.base, BASE_TAG, [builder.base], ['PATH=/usr/bin:/bin'], signal);
  const used = [...new Set(input.workload.flatMap((r) => r.codes))].sort();
  await mapLimit(used, PUSH_CONCURRENCY, async (code, _i, s) => {
    const v = versions.get(code)!;
    await pushImage(client, registry.host, BENCH_REPOS.package(v.package), v.version, [builder.packageLayer(code)], [], s);
  }, signal);
  const entries: Record<string, unknown> = {};
  for (const code of used) {
    const v = versions.get(code)!;
    entries[code] = { image: `${BENCH_REPOS.package(v.package)}:${v.version}`, prefix: `/${packageDir(code)}`, pathAdd: [`/${packageDir(code)}/bin`], group: v.package };
  }
  const catalogFile = join(input.work, 'catalog.json');
  await writeFile(catalogFile, JSON.stringify({ entries }));

  const layersOf = new Map<ApproachName, Map<string, Digest[]>>();
  layersOf.set('hostpull', new Map(tags.map((t) => [t, [builder.base.digest, ...t.split('-').map((c) => builder.packageLayer(c).digest)]])));
  const blobs = [builder.base, ...used.map((c) => builder.packageLayer(c))];
  if (input.baselines) {
    for (const name of ['flattened', 'stacked'] as const) {
      const layersFor = (t: string) => (name === 'flattened' ? builder.flattenedLayers(t.split('-')) : builder.stackedLayers(t.split('-')));
      const repository = name === 'flattened' ? BENCH_REPOS.flattened : BENCH_REPOS.stacked;
      // Each distinct layer is uploaded once, before the images that share it: two uploads of one
      // blob to one repository at once race in the registry (distribution answered a HEAD of it
      // with 500 while the other upload committed), and then the images' pushes only HEAD them.
      const distinct = [...new Map(tags.flatMap((t) => layersFor(t)).map((l) => [l.digest, l])).values()];
      await mapLimit(distinct, PUSH_CONCURRENCY, (l, _i, s) => client.pushBlob({ registry: registry.host, repository }, l.digest, l.size, l.blob, { signal: s }), signal);
      await mapLimit(tags, PUSH_CONCURRENCY, (t, _i, s) => pushImage(client, registry.host, repository, t, layersFor(t), builder.pathEnv(t.split('-')), s), signal);
      layersOf.set(name, new Map(tags.map((t) => [t, layersFor(t).map((l) => l.digest)])));
      for (const t of tags) blobs.push(...layersFor(t));
    }
  }
  return { layersOf, sizes: new Map(blobs.map((b) => [b.digest, b.size])), catalogFile };
}

/** How many images an approach needed in the registry, and their distinct layers and bytes. */
function imageFootprint(pushed: PushedImages, name: ApproachName): Pick<ApproachResult, 'images' | 'distinctLayers' | 'distinctLayerBytes'> {
  const imageLayers = pushed.layersOf.get(name)!;
  const distinct = new Set([...imageLayers.values()].flat());
  return { images: imageLayers.size, distinctLayers: distinct.size, distinctLayerBytes: [...distinct].reduce((n, d) => n + (pushed.sizes.get(d) ?? 0), 0) };
}

/** HEADs each composite once so the server has synthesised (and pushed) it before the replay. */
async function primeServer(url: string, namespace: string, tags: readonly string[], signal?: AbortSignal): Promise<void> {
  for (const tag of tags) {
    const res = await fetch(`${url}/v2/${namespace}/manifests/${tag}`, { method: 'HEAD', ...(signal ? { signal } : {}) });
    await res.arrayBuffer();
    if (res.status !== 200) throw new HostpullError('BENCH_SERVER', `the bench server answered ${res.status} for composite ${tag}`);
  }
}

async function prepareWorkload(options: BenchOptions, seed: number): Promise<{ catalog: BenchCatalog; workload: BenchRequest[]; source: 'synthetic' | 'trace' }> {
  const scale = options.scale ?? 0.005;
  if (options.traceFile) {
    let text: string;
    try {
      text = await readFile(options.traceFile, 'utf8');
    } catch (err) {
      throw new HostpullError('USAGE', `cannot read trace ${options.traceFile}: ${(err as Error).message}`, { cause: err });
    }
    const workload = parseTrace(text, options.traceFile);
    return { catalog: catalogFromTrace(workload, { seed, scale }), workload, source: 'trace' };
  }
  const catalog = syntheticCatalog({ packages: options.packages ?? 6, versions: options.versions ?? 3, seed, scale });
  const workload = generateWorkload(catalog, {
    requests: options.requests ?? 20,
    seed,
    ...(options.zipfExponent !== undefined ? { zipfExponent: options.zipfExponent } : {}),
    ...(options.minCodes !== undefined ? { minCodes: options.minCodes } : {}),
    ...(options.maxCodes !== undefined ? { maxCodes: options.maxCodes } : {}),
  });
  return { catalog, workload, source: 'synthetic' };
}

/** Node of each request: round-robin, or seeded uniform draws. */
export function nodeAssignment(requests: number, nodes: number, mode: 'round-robin' | 'random', seed: number): number[] {
  const rnd = mulberry32(hashSeed(seed, 'nodes'));
  return Array.from({ length: requests }, (_, i) => (mode === 'random' ? randomInt(rnd, nodes) : i % nodes));
}

interface ReplayInput {
  name: ApproachName;
  target: Target;
  workload: BenchRequest[];
  assign: number[];
  nodes: number;
  unpack: boolean;
  work: string;
  registry: LocalRegistry;
  client: RegistryClient;
  logger: Logger;
  options: BenchOptions;
}

/** Registry-logged bytes of the blobs (config + layers) of one pull, by digest. */
function blobBytes(result: PullResult, log: RegistryAccess[]): number {
  const served = servedBlobBytes(log);
  const digests = new Set<string>([result.configDigest, ...result.layers.map((l) => l.digest)]);
  return [...digests].reduce((n, d) => n + (served.get(d) ?? 0), 0);
}

/**
 * Compares the client's own byte count with the registry's log. A baseline pull goes straight to
 * the registry, so every byte must match. A hostpull pull gets its manifest from the server's
 * memory, so the comparison is on blobs (config + layers) by digest; what else the registry
 * served in the window is the server reading package images, which counts as egress.
 */
function agrees(name: ApproachName, result: PullResult, manifestBytes: number, log: RegistryAccess[]): boolean {
  if (name !== 'hostpull') return result.bytesFetched === servedBytes(log);
  return result.bytesFetched - manifestBytes === blobBytes(result, log);
}

async function replay(input: ReplayInput): Promise<Omit<ApproachResult, 'images' | 'distinctLayers' | 'distinctLayerBytes'>> {
  const { name, target, workload, assign, work, registry, client, logger, options, unpack } = input;
  const account = new HitRateAccount();
  const roots = Array.from({ length: input.nodes }, (_, i) => join(work, name, `node-${i}`));
  const stores: Array<ContentStore | undefined> = [];
  const details: RequestRecord[] = [];
  let mismatches = 0;
  let clientBlobBytes = 0;
  let registryBlobBytes = 0;
  try {
    for (const root of roots) await mkdir(root, { recursive: true });
    for (const [i, req] of workload.entries()) {
      options.signal?.throwIfAborted();
      const node = assign[i]!;
      stores[node] ??= await ContentStore.open(roots[node]!, { logger });
      const store = stores[node];
      const puller = new Puller({ store, client, logger });
      const mark = await registry.mark();
      const result = await puller.pull({ registry: target.registry, repository: target.repository, tag: target.tag(req) }, { unpack, ...(options.signal ? { signal: options.signal } : {}) });
      const log = await registry.since(mark);
      // An up-to-date pull fetched at most its manifest (a GET of a tag stored under another
      // spelling; a HEAD fetches nothing), so all its bytes are manifest bytes.
      const manifestBytes = result.upToDate ? result.bytesFetched : (store.blobs.get(result.manifestDigest)?.size ?? 0);
      if (!agrees(name, result, manifestBytes, log)) {
        mismatches++;
        logger.warn({ approach: name, tag: result.reference, client: result.bytesFetched, registry: servedBytes(log) }, 'client and registry byte counts differ');
      }
      clientBlobBytes += result.bytesFetched - manifestBytes;
      registryBlobBytes += blobBytes(result, log);
      const storeBytes = await diskUsage(roots[node]!);
      const registryBytes = servedBytes(log);
      account.record({ tag: canonicalTag(req.codes), node, layers: result.layers.map((l) => ({ size: l.size, hit: l.hit })), bytesFetched: result.bytesFetched, registryBytes, ms: result.phases.total, storeBytes });
      details.push({ tag: canonicalTag(req.codes), node, layers: result.layers.length, layerHits: result.layerHits, bytesFetched: result.bytesFetched, registryBytes, ms: result.phases.total, storeBytes });
      options.onProgress?.({ approach: name, done: i + 1, total: workload.length });
    }
  } finally {
    for (const s of stores) s?.close();
  }
  // Park the stores in a trash dir rather than deleting them now: on this machine's journal-less
  // ext4, a mass delete slows the file creates of the next replay for minutes (see
  // bench/peers/README.md); the whole work dir goes at the end.
  await mkdir(join(work, 'trash'), { recursive: true });
  await rename(join(work, name), join(work, 'trash', name)).catch(() => undefined);
  return { name, ...account.summary(), byteMismatches: mismatches, blobBytesFetched: clientBlobBytes, registryBlobBytes, series: account.series, requestsDetail: details };
}
