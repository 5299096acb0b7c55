/**
 * Garbage collection: what no image, mount, snapshot or pull holds, and LRU eviction under a size
 * budget (the policy; the store does the removing, under its protocol).
 */
export { collectGarbage, type GcReport } from './collect-garbage.js';
