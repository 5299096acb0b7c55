/**
 * OCI runtime bundles from image configs, the runtime probe, and running a container with runc/crun.
 */
export { buildRuntimeSpec, checkHostname, type BindMount, type NetworkMode, type RuntimeSpecInput } from './build-runtime-spec.js';
export { parseVolumes } from './volume.js';
export { captureOutput } from './capture-output.js';
export { cleanupStaleContainers } from './cleanup-stale-containers.js';
export { detectRuntime } from './detect-runtime.js';
export { execInContainer } from './exec-in-container.js';
export { execRuntime, tail } from './exec-runtime.js';
export { ownerAlive, removeOwner, writeOwner } from './owner.js';
export { forwardSignals } from './foreground.js';
export { runContainer, type RunResult } from './run-container.js';
export { type RuntimeInfo } from './runtime-info.js';
export { type RuntimeSpec } from './spec-types.js';
export { writeBundle } from './write-bundle.js';
export { resolveUser } from './user.js';
