/**
 * Run, mount and hand over a rootfs: pull + rootfs + runtime composed, and their cleanup on
 * every exit path (and at daemon start).
 */
export { execContainer } from './exec-container.js';
export { learnPrefetch } from './learn-prefetch.js';
export { killContainer, stopContainer } from './stop-container.js';
export { listContainers } from './list-containers.js';
export { mountImage, unmountImage } from './mount-image.js';
export { handOverContainer, type HostDeps, prepareContainer } from './prepare-container.js';
export { removeContainer, removeStoppedContainer } from './remove-container.js';
export { reconcileContainers } from './reconcile-containers.js';
export { runImage } from './run-image.js';
