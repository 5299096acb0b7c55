/**
 * What both sides read a layer with (the server at registration, the node at unpack): the tar reader and
 * its entry rules, decompression, footprints and claims, hash-while-streaming, the tar writer.
 */
export { archiveError, type ArchiveErrorCode, isArchiveError } from './archive-error.js';
export { type CheckedEntry, type CheckedEntrySink, EntryChecker } from './entry-checker.js';
export { baseOf, normaliseEntryPath, parentOf } from './entry-path.js';
export { FootprintBuilder, footprintViolation, type LayerFootprint } from './layer-footprint.js';
export { CAPABILITY_XATTR, isNeutralDir, normalisePrefix, type PackageClaim, SETID_BITS } from './package-claim.js';
export { expansionBound, LAYER_LIMIT_DEFAULTS, type LayerSink, mapReadError, readLayer, type TarByteBound } from './read-layer.js';
export { type TarEntryHeader, type TarEntrySink, TarReader } from './tar-reader.js';
export { contentCrc32 } from './content-crc.js';
export { checksumOfTree, treeChecksum, treeEntryOf, type TreeEntry } from './tree-checksum.js';
export { VerifyingStream } from './verifying-stream.js';
