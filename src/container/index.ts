export * from './container-dirs.js';
export * from './mount-image.js';
export * from './prepare-container.js';
export * from './reconcile-containers.js';
export * from './remove-container.js';
export * from './run-image.js';
