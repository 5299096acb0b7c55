/**
 * Lazy layers: a layer not unpacked yet, mounted read-only over FUSE from its seekable table of
 * contents (spans fetched with Range requests, verified, cached), completed in the background
 * into the store, and the learned prefetch of a composite's first start.
 */
export { cleanupStaleLazyMounts, pruneSpanCaches } from './cleanup-lazy-mounts.js';
export { FuseHelper } from './fuse-helper.js';
export { type FetchPolicy } from './helper-protocol.js';
export { type LazyCandidate, LazyLayers, type LazyLayersOptions, type LazyMount } from './lazy-layers.js';
