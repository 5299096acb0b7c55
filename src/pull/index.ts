/**
 * The pull pipeline: HEAD first, unseen blobs only, download → verify → unpack in one pass, and the
 * package claims layers are held to.
 */
export { type LayerOutcome, type PullEvent } from './events.js';
export { fetchImageConfig } from './fetch-config.js';
export { checkStoredLayers, layerClaim, layerClaims, quarantineUnjudged } from './layer-claims.js';
export { applyOptions, layerCommit } from './fetch-layer.js';
export { type DeferCandidate, Puller, type PullerDeps, type PullPolicy, type PullResult } from './puller.js';
