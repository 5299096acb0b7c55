export { collectGarbage, gcSnapshot, type GcOptions, type GcReport } from './collect-garbage.js';
export { DEFAULT_GC_GRACE_MS, selectEvictions, type GcPlan, type GcPolicy, type GcSnapshot } from './select-evictions.js';
