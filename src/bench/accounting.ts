/** What one pull contributed, as the bench sees it (built from a PullResult). */
export interface PullSample {
  /** Canonical composite tag. */
  tag: string;
  /** Node (store) that pulled it. */
  node: number;
  /** Each layer of the image: its compressed size and whether the store already had it. */
  layers: ReadonlyArray<{ size: number; hit: boolean }>;
  /** Every byte the client read from the network for this pull: manifest, config, layers. */
  bytesFetched: number;
  /** Bytes the registry logged as served while this pull ran (0 when not measured). */
  registryBytes: number;
  ms: number;
  /** Disk used by the node's store after the pull. */
  storeBytes: number;
}

export interface HitRates {
  requests: number;
  layerHits: number;
  layerMisses: number;
  /** Compressed bytes of layers found in the store. */
  bytesReused: number;
  /** Compressed bytes of layers that had to be downloaded. */
  bytesMissed: number;
  /** hits / (hits + misses), 0–1; 0 when no layer was asked for. */
  layerHitRate: number;
  /** reused / (reused + missed): the share of layer bytes served from the store, 0–1. */
  byteHitRate: number;
  bytesFetched: number;
  registryBytes: number;
  /** Sum over nodes of each node's final store size. */
  storeBytes: number;
  /** Pulls that downloaded at least one layer, and pulls that found every layer. */
  cold: { pulls: number; medianMs: number; meanMs: number };
  warm: { pulls: number; medianMs: number; meanMs: number };
}

/** One point of the running totals after a request, for the charts. */
export interface SeriesPoint {
  layerHitRate: number;
  byteHitRate: number;
  bytesFetched: number;
  registryBytes: number;
}

function median(xs: number[]): number {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function mean(xs: number[]): number {
  return xs.length === 0 ? 0 : xs.reduce((a, b) => a + b, 0) / xs.length;
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}

/**
 * Running hit-rate accounting for one approach (hostpull or a baseline) over a replay. Kept apart
 * from the replay so its arithmetic can be checked on a hand-made sequence.
 */
export class HitRateAccount {
  readonly samples: PullSample[] = [];
  readonly series: SeriesPoint[] = [];
  #hits = 0;
  #misses = 0;
  #reused = 0;
  #missed = 0;
  #fetched = 0;
  #registry = 0;

  record(sample: PullSample): void {
    this.samples.push(sample);
    for (const l of sample.layers) {
      if (l.hit) {
        this.#hits++;
        this.#reused += l.size;
      } else {
        this.#misses++;
        this.#missed += l.size;
      }
    }
    this.#fetched += sample.bytesFetched;
    this.#registry += sample.registryBytes;
    this.series.push({
      layerHitRate: ratio(this.#hits, this.#hits + this.#misses),
      byteHitRate: ratio(this.#reused, this.#reused + this.#missed),
      bytesFetched: this.#fetched,
      registryBytes: this.#registry,
    });
  }

  summary(): HitRates {
    const lastStore = new Map<number, number>();
    for (const s of this.samples) lastStore.set(s.node, s.storeBytes);
    const cold = this.samples.filter((s) => s.layers.some((l) => !l.hit)).map((s) => s.ms);
    const warm = this.samples.filter((s) => s.layers.every((l) => l.hit)).map((s) => s.ms);
    return {
      requests: this.samples.length,
      layerHits: this.#hits,
      layerMisses: this.#misses,
      bytesReused: this.#reused,
      bytesMissed: this.#missed,
      layerHitRate: ratio(this.#hits, this.#hits + this.#misses),
      byteHitRate: ratio(this.#reused, this.#reused + this.#missed),
      bytesFetched: this.#fetched,
      registryBytes: this.#registry,
      storeBytes: [...lastStore.values()].reduce((a, b) => a + b, 0),
      cold: { pulls: cold.length, medianMs: round3(median(cold)), meanMs: round3(mean(cold)) },
      warm: { pulls: warm.length, medianMs: round3(median(warm)), meanMs: round3(mean(warm)) },
    };
  }
}

function ratio(a: number, b: number): number {
  return b === 0 ? 0 : a / b;
}
