export * from './collect-garbage.js';
export * from './mounts.js';
export * from './process-start.js';
export * from './select-evictions.js';
export * from './stale-mounts.js';
