/**
 * Safe apply of one layer into its own directory (whiteouts, ownership, xattrs, claims).
 */
export { ApplyWorkers } from './apply-in-worker.js';
export { applyLayer, type ApplyOptions, type ApplyResult } from './apply-layer.js';
