export { applyLayer, UNPACK_DEFAULTS, type ApplyOptions, type ApplyResult } from './apply-layer.js';
