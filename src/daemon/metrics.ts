import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { PullResult } from '../pull/index.js';
import { SNAPSHOT_LAYER_OUTCOMES, type ContentStore } from '../store/index.js';

/**
 * `/metrics` in the Prometheus text format, on a registry of our own (prom-client's global
 * default registry would be a module-level singleton shared by every daemon in the process).
 *
 * Pull counters come from the store's pull log at scrape time, so they count every pull on this
 * node — through the daemon or in-process by the CLI beside it — and survive daemon restarts
 * (the log is append-only, so they only go up). Durations are observed live, for the pulls this
 * daemon runs.
 */
export class DaemonMetrics {
  readonly registry = new Registry();
  readonly #store: ContentStore;
  readonly #activePulls: () => number;
  readonly #pulls: Counter<'result'>;
  readonly #bytesFetched: Counter;
  readonly #bytesReused: Counter;
  readonly #layerHits: Counter;
  readonly #layerMisses: Counter;
  readonly #hitRatio: Gauge;
  readonly #duration: Histogram<'phase'>;
  readonly #mounts: Gauge;
  readonly #storeBytes: Gauge<'kind'>;
  readonly #inflight: Gauge;
  readonly #arrivals: Gauge<'arrival'>;
  readonly #arrival: Gauge<'layer' | 'arrival' | 'reason'>;
  readonly #snapshotLayers: Counter<'outcome'>;
  readonly #snapshotBytes: Counter;
  readonly #snapshotLayer: Gauge<'diff_id' | 'outcome'>;
  readonly #snapshots: Gauge;

  constructor(store: ContentStore, options: { activePulls?: () => number } = {}) {
    this.#store = store;
    this.#activePulls = options.activePulls ?? (() => 0);
    const registers = [this.registry];
    this.#pulls = new Counter({ name: 'hostpull_pulls_total', help: 'Pulls on this node by result (ok, up_to_date, failed)', labelNames: ['result'], registers });
    this.#bytesFetched = new Counter({ name: 'hostpull_bytes_fetched_total', help: 'Bytes fetched from registries by pulls (manifests, configs, layers) and by lazy pulling (the spans and background pulls of lazy layers)', registers });
    this.#bytesReused = new Counter({ name: 'hostpull_bytes_reused_total', help: 'Layer bytes found in the store instead of fetched', registers });
    this.#layerHits = new Counter({ name: 'hostpull_layer_hits_total', help: 'Layers already in the store when pulled', registers });
    this.#layerMisses = new Counter({ name: 'hostpull_layer_misses_total', help: 'Layers not in the store when pulled: fetched by the pull, or mounted lazily by a lazy run', registers });
    this.#hitRatio = new Gauge({ name: 'hostpull_layer_hit_ratio', help: 'layer hits / (hits + misses) over all pulls', registers });
    this.#duration = new Histogram({
      name: 'hostpull_pull_duration_seconds',
      help: 'Duration of pulls run by this daemon, by phase (resolve, layers = fetch + unpack, total)',
      labelNames: ['phase'],
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
      registers,
    });
    this.#mounts = new Gauge({ name: 'hostpull_active_mounts', help: 'Rootfs recorded as mounted (their layers are never collected)', registers });
    this.#storeBytes = new Gauge({ name: 'hostpull_store_bytes', help: 'Bytes in the store by kind (blobs, layers = unpacked)', labelNames: ['kind'], registers });
    this.#inflight = new Gauge({ name: 'hostpull_active_pulls', help: 'Pulls this daemon is running now', registers });
    this.#arrivals = new Gauge({ name: 'hostpull_layers_by_arrival', help: 'Layers on this node by how they arrived (whole, lazy, lazy_completed)', labelNames: ['arrival'], registers });
    this.#arrival = new Gauge({
      name: 'hostpull_layer_arrival',
      help: 'One series per layer: how it arrived (whole, lazy, lazy_completed) and, if not lazy or not completed, why; value = bytes fetched lazily',
      labelNames: ['layer', 'arrival', 'reason'],
      registers,
    });
    this.#snapshotLayers = new Counter({
      name: 'hostpull_snapshotter_layers_total',
      help: 'Layers containerd asked the snapshotter for, by outcome: fetched by hostpull, reused from the store, applied by containerd, served lazily by hostpull',
      labelNames: ['outcome'],
      registers,
    });
    this.#snapshotBytes = new Counter({ name: 'hostpull_snapshotter_bytes_fetched_total', help: 'Compressed bytes hostpull fetched whole for containerd (what lazy layers fetch is in hostpull_bytes_fetched_total)', registers });
    this.#snapshotLayer = new Gauge({
      name: 'hostpull_snapshotter_layer_outcomes',
      help: 'Per layer (diff_id; a chainID for a layer containerd applied without naming it): how often each outcome happened',
      labelNames: ['diff_id', 'outcome'],
      registers,
    });
    this.#snapshots = new Gauge({ name: 'hostpull_snapshotter_snapshots', help: 'containerd snapshots recorded in the store (all namespaces)', registers });
  }

  /** Records the phase durations of a finished pull. */
  observePull(result: PullResult): void {
    this.#duration.labels('resolve').observe(result.phases.resolve / 1000);
    this.#duration.labels('layers').observe(result.phases.layers / 1000);
    this.#duration.labels('total').observe(result.phases.total / 1000);
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** The exposition text, with store-derived values read now. */
  async render(): Promise<string> {
    this.#refresh();
    return this.registry.metrics();
  }

  #refresh(): void {
    const s = this.#store.pullStats();
    const totals = this.#store.totals();
    const ok = s.pulls - s.failedPulls - s.upToDatePulls;
    const setCounter = (c: Counter, v: number) => {
      c.reset();
      c.inc(v);
    };
    this.#pulls.reset();
    this.#pulls.labels('ok').inc(ok);
    this.#pulls.labels('up_to_date').inc(s.upToDatePulls);
    this.#pulls.labels('failed').inc(s.failedPulls);
    setCounter(this.#bytesFetched, s.bytesFetched);
    setCounter(this.#bytesReused, s.bytesReused);
    setCounter(this.#layerHits, s.layerHits);
    setCounter(this.#layerMisses, s.layerMisses);
    this.#hitRatio.set(s.layerHitRate);
    this.#mounts.set(totals.mounts);
    this.#storeBytes.labels('blobs').set(totals.blobBytes);
    this.#storeBytes.labels('layers').set(totals.unpackedBytes);
    this.#inflight.set(this.#activePulls());
    this.#arrivals.reset();
    this.#arrival.reset();
    for (const kind of ['whole', 'lazy', 'lazy_completed']) this.#arrivals.labels(kind).set(0);
    for (const l of this.#store.layerArrivals()) {
      const arrival = l.arrival.replace('-', '_');
      this.#arrivals.labels(arrival).inc();
      this.#arrival.labels(l.blobDigest, arrival, (l.reason ?? '').slice(0, 200)).set(l.bytesLazy);
    }
    const t = this.#store.snapshotLog.totals();
    this.#snapshotLayers.reset();
    for (const outcome of SNAPSHOT_LAYER_OUTCOMES) this.#snapshotLayers.labels(outcome).inc(t[outcome]);
    setCounter(this.#snapshotBytes, t.bytesFetched);
    this.#snapshotLayer.reset();
    for (const l of this.#store.snapshotLog.perLayer()) {
      const id = l.diffId ?? l.chainId;
      for (const outcome of SNAPSHOT_LAYER_OUTCOMES) if (l[outcome] > 0) this.#snapshotLayer.labels(id, outcome).set(l[outcome]);
    }
    this.#snapshots.set(totals.snapshots);
  }
}
