/**
 * containerd's snapshots.v1 service over the store: snapshots as rows, layers fetched remotely for
 * CRI pulls, the gRPC binding.
 */
export { snapshotsService } from './grpc-service.js';
export { loadProto, serviceOf, SNAPSHOTS_PROTO, SNAPSHOTS_SERVICE } from './proto.js';
export { LazySnapshotLayers } from './lazy-snapshot-layers.js';
export { RemoteLayers } from './remote-layers.js';
export { Snapshotter } from './snapshotter.js';
