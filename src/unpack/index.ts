export { applyLayer, type ApplyOptions, type ApplyResult } from './apply-layer.js';
export { ApplyWorkers, type ApplyWorkersOptions } from './apply-in-worker.js';
export { createDecompressor, type DecompressorOptions } from './decompress.js';
export { normaliseEntryPath } from './entry-path.js';
export { TarReader, type TarEntryHeader, type TarEntrySink, type TarEntryType } from './tar-reader.js';
