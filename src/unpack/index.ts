/**
 * Safe apply of one layer into its own directory (whiteouts, ownership, xattrs, claims).
 */
export { applyLayer, type ApplyOptions, type ApplyResult } from './apply-layer.js';
