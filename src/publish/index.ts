/**
 * Package layers and their push: deterministic tars of a directory under its prefix, the
 * one-layer image, the catalog client.
 */
export { attachToc } from './attach-toc.js';
export { defaultLayerMtime } from './build-layer.js';
export { CatalogClient } from './catalog-client.js';
export { defaultRepository, publishPackage } from './publish.js';
export { type PushedLayerImage, pushSingleLayerImage } from './push-image.js';
export { writeSeekableLayer } from './seekable-layer.js';
export { TAR_END, tarHeader, tarPadding } from './tar-writer.js';
