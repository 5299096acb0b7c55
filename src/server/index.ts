/**
 * The virtual image server: the distribution read API, composite tags, the catalog, the upstreams
 * (an OCI layout or a registry) publishing writes to.
 */
export { type CatalogEntries, type CatalogEntry, parseCatalogEntry, validateCodeName } from './catalog-entry.js';
export { canonicalTag } from './composite-tag.js';
export { LayoutUpstream } from './layout-upstream.js';
export { artifactManifest, attachReferrer } from './referrers.js';
export { type RunningServer, startServer } from './serve.js';
export { createUpstream } from './upstream-factory.js';
export { withoutUpstreamHost } from './upstream-image-name.js';
export { readUpstreamImage } from './upstream-image.js';
export { type Upstream } from './upstream.js';
