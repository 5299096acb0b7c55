import type { Digest } from '../oci/index.js';
import { errorText } from '../errors.js';
import { retryLeftMs, type RetryNotice } from '../registry/index.js';

/** Progress of a pull, for progress bars (CLI) and NDJSON streams (daemon). */
export type PullEvent =
  | { type: 'resolved'; reference: string; manifestDigest: Digest; upToDate: boolean; layers: Array<{ digest: Digest; size: number }> }
  /** The registry started failing one of the pull's operations; it is retried for up to `retryForMs`. */
  | { type: 'retry'; registry: string; what?: string; error: string; retryForMs: number }
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

/**
 * A pull's retry listener: the first retry of each streak becomes a `retry` event (the later ones
 * only say the same again), so a daemon's client learns what the daemon's log says.
 */
export function retryEvents(onEvent: (e: PullEvent) => void): (notice: RetryNotice) => void {
  return (n) => {
    if (n.inARow !== 1) return;
    onEvent({
      type: 'retry',
      registry: n.registry,
      ...(n.what ? { what: n.what } : {}),
      error: errorText(n.error),
      retryForMs: retryLeftMs(n),
    });
  };
}
