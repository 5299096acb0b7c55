export * from './events.js';
export * from './fetch-config.js';
export * from './fetch-layer.js';
export * from './puller.js';
