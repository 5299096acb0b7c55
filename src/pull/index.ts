export * from './events.js';
export * from './fetch-layer.js';
export * from './puller.js';
