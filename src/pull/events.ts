import type { Digest } from '../oci/index.js';

/** Progress of a pull, for progress bars (CLI) and NDJSON streams (daemon). */
export type PullEvent =
  | { type: 'resolved'; reference: string; manifestDigest: Digest; upToDate: boolean; layers: Array<{ digest: Digest; size: number }> }
  | { type: 'layer-start'; digest: Digest; size: number; resumeFrom: number }
  | { type: 'layer-progress'; digest: Digest; bytes: number; size: number }
  | { type: 'layer-done'; digest: Digest; hit: boolean; fetchedBytes: number };

export interface LayerOutcome {
  digest: Digest;
  diffId: Digest;
  size: number;
  /** Nothing of this layer was fetched by this pull (already in the store, or fetched by a concurrent pull). */
  hit: boolean;
  fetchedBytes: number;
  /** Offset a resumed download started from (0 when it started fresh). */
  resumedFrom: number;
  /** Unpacked here by this pull. */
  unpacked: boolean;
  /** layers/<id> of the unpacked layer, when unpacking was requested. */
  layerId?: number;
  /** Not fetched by this pull: the caller took it over (a lazy layer, see PullOptions.defer). */
  deferred?: boolean;
}
