/**
 * The content store: what other folders may use. Its tables, file names and concurrency rules
 * (protocol.ts) stay inside: callers go through ContentStore and the parts it holds.
 */
export { ContentStore, type UnpackLimitOptions } from './content-store.js';
export { type ImageRow, type ManifestLayerRow } from './images.js';
export { type LayerCommit, type LayerRow } from './layers.js';
export { type StoreLayout } from './layout.js';
export { type MountRow } from './mounts.js';
export { type PullRecord, type PullStats } from './pulls.js';
export { type SnapshotLayerStats, type SnapshotterTotals } from './snapshot-events.js';
export { type SnapshotKind, type SnapshotRow } from './snapshots.js';
export { verifyStore } from './verify-store.js';
