export { applyLayer, type ApplyOptions, type ApplyResult } from './apply-layer.js';
export { ApplyWorkers, type ApplyWorkersOptions } from './apply-in-worker.js';
