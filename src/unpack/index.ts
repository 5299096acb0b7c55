export { applyLayer, type ApplyOptions, type ApplyResult } from './apply-layer.js';
