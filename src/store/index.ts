/**
 * The content store: what other folders may use. Its tables, file names and concurrency rules
 * (protocol.ts) stay inside: callers go through ContentStore and the parts it holds.
 */
export { ContentStore, type OpenStoreOptions, type StoreInventory, type StoreTotals, type UnpackLimitOptions, type UnpackLimits } from './content-store.js';
export type { BlobRow, BlobStore, Ingest } from './blobs.js';
export type { ImageIndex, ImageRow, ManifestLayerRow } from './images.js';
export type { LayerCommit, LayerRow, LayerStore } from './layers.js';
export type { StoreLayout } from './layout.js';
export type { Leases, SingleFlightOptions } from './leases.js';
export type { MountRecords, MountRow, RecordMountOptions } from './mounts.js';
export type { PartialDownloadsOptions, PartialDownloadsReport } from './partials.js';
export type { PullLog, PullPhases, PullRecord, PullStats } from './pulls.js';
export type { ReconcileReport } from './reconcile.js';
export type { SnapshotLayerEvent, SnapshotLayerLog, SnapshotLayerOutcome, SnapshotLayerStats, SnapshotterTotals } from './snapshot-events.js';
export type { NewSnapshot, SnapshotKind, SnapshotRow, SnapshotStore } from './snapshots.js';
export { verifyStore, type VerifyOptions, type VerifyProblem, type VerifyReport } from './verify-store.js';
