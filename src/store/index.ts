/**
 * The content store: what other folders may use. Its tables, file names and concurrency rules
 * (protocol.ts) stay inside: callers go through ContentStore and the parts it holds. `verify`
 * loads the archive reader it checks layers with on call, not with this face.
 */
import type { ContentStore } from './content-store.js';
import type { VerifyOptions, VerifyReport } from './verify-store.js';

export { ContentStore, type HostPullStats, type UnpackLimitOptions } from './content-store.js';
export type { ImageRow, ManifestLayerRow } from './images.js';
export type { LayerCommit, LayerRow } from './layers.js';
export type { LayerArrivalSummary } from './lazy-layers.js';
export type { StoreLayout } from './layout.js';
export type { MountRow } from './mounts.js';
export type { PullHold } from './pull-holds.js';
export type { PullRecord, PullStats } from './pulls.js';
export { SNAPSHOT_LAYER_OUTCOMES } from './snapshot-events.js';
export type { SnapshotLayerStats, SnapshotterTotals } from './snapshot-events.js';
export type { SnapshotKind, SnapshotRow } from './snapshots.js';

/** `hostpull verify`: every blob against its digest, every layer against its recorded checksum (verify-store.ts). */
export async function verifyStore(store: ContentStore, options: VerifyOptions = {}): Promise<VerifyReport> {
  const { verifyStore: verify } = await import('./verify-store.js');
  return verify(store, options);
}
