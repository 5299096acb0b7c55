export * from './digest.js';
export * from './mediatypes.js';
export * from './manifest.js';
export * from './platform.js';
export * from './reference.js';
export * from './annotations.js';
