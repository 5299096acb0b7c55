/**
 * The OCI data model: digests, references, media types, platforms, annotations, and the
 * validation of manifests, indexes and configs (zod, loaded when something is validated).
 */
export { CODENAMES_ANNOTATION, LAYER_ALLOW_SETUID_ANNOTATION, LAYER_CODENAME_ANNOTATION, LAYER_DIFF_ID_ANNOTATION, LAYER_PREFIX_ANNOTATION, LAYER_ROLE_ANNOTATION, packageLayerNames, PACKAGES_ANNOTATION } from './annotations.js';
export { digestStream, HashingStream, hashInto } from './digest-stream.js';
export { createDigester, type Digest, digestAlgorithm, type DigestAlgorithm, digestFromHash, digestHex, digestOf, isDigest, parseDigest, shortDigest } from './digest.js';
export { checkManifestAgainstConfig, DEFAULT_PATH, type Descriptor, type ImageConfig, type ImageManifest, MAX_CONFIG_BYTES, MAX_MANIFEST_BYTES, parseImageConfig, parseManifest, type Platform } from './manifest.js';
export { layerCompression, type LayerCompression, MANIFEST_ACCEPT, MediaType } from './mediatypes.js';
export { hostPlatform, selectPlatform } from './platform.js';
export { formatReference, type ImageReference, isValidRepository, manifestSelector, MAX_TAG_LENGTH, parseReference, resolveReference, validateTag } from './reference.js';
export { MAX_PREFETCH_BYTES, parsePrefetchList, PREFETCH_ARTIFACT_TYPE, PREFETCH_MEDIA_TYPE, type PrefetchList, prefetchListMap } from './prefetch-list.js';
export { inflateSpan, MAX_TOC_BLOB_BYTES, parseTocBlob, type RawInflater, type SeekableToc, spanDeflate, spanSha256, spanSizeMismatch, spansFor, TOC_ANNOTATION, TOC_ARTIFACT_TYPE, TOC_LAYER_ANNOTATION, TOC_MEDIA_TYPE, type TocEntry, type TocSpan, zlibRawInflater } from './seekable-toc.js';
