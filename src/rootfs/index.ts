export * from './conflicts.js';
export * from './mount-plan.js';
export * from './mount.js';
export * from './mountinfo.js';
