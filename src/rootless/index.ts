export * from './check-rootless.js';
export * from './protocol.js';
export * from './rootless-child.js';
export * from './run-in-namespace.js';
