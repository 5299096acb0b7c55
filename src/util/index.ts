/**
 * Small helpers with no knowledge of hostpull's parts: units, bounded reads, process liveness,
 * concurrency limits, undici's dispatchers without the rest of undici.
 */
export { formatBytes } from './format-bytes.js';
export { mapLimit } from './limit.js';
export { isAlive, processAlive, processStartTime } from './process-alive.js';
export { readBounded } from './read-bounded.js';
export { readDirOrEmpty } from './read-dir-or-empty.js';
export { Semaphore } from './semaphore.js';
export { loadDispatcherClass } from './undici-dispatcher.js';
export { DURATION_FORMAT, parseDuration, parseSize, SIZE_FORMAT } from './units.js';
export { compareUtf8 } from './utf8-order.js';
export { applyV8Flags, appliedV8Flags } from './v8-flags.js';
export { inheritableExecArgv } from './inheritable-exec-argv.js';
export { buildFile, packageVersion } from './build-files.js';
export { writeWithBackpressure } from './write-with-backpressure.js';
