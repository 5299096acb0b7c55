/**
 * Annotations hostpull writes on composite manifests (image-spec annotations.md: reverse-domain
 * keys for anything not in org.opencontainers.*). Shared by the server that writes them and the
 * host that reads them.
 */
/** The canonical composite tag, e.g. `GRD7.0-JDK11.0-MVN3.8`: one code name per package layer, in layer order. */
export const CODENAMES_ANNOTATION = 'dev.hostpull.codenames';
/** JSON object: code name → the package image's manifest digest it was resolved to. */
export const PACKAGES_ANNOTATION = 'dev.hostpull.packages';

/**
 * Code names of a composite's package layers, aligned with the manifest's layers: the package
 * layers are the last N (after the base layers), in the order the annotation lists them.
 * Undefined for an ordinary image.
 */
export function packageLayerNames(annotations: Record<string, string> | undefined, layerCount: number): Array<string | undefined> | undefined {
  const tag = annotations?.[CODENAMES_ANNOTATION];
  if (!tag) return undefined;
  const codes = tag.split('-');
  if (codes.length > layerCount) return undefined;
  const base = layerCount - codes.length;
  return Array.from({ length: layerCount }, (_, i) => (i < base ? undefined : codes[i - base]));
}

/**
 * On each layer descriptor of a composite: the layer's diff_id. containerd passes a layer's
 * `containerd.io/snapshot/*` annotations to the snapshotter as labels when it prepares the layer,
 * so hostpull's snapshotter knows which unpacked layer (keyed by diff_id) containerd asks for
 * without fetching the image config.
 */
export const LAYER_DIFF_ID_ANNOTATION = 'containerd.io/snapshot/hostpull.diff-id';

/**
 * Layer descriptor annotations of a composite: which layer is which package and what it may
 * write (DESIGN §2 "The trust boundary"). The server writes them (server/synthesize.ts), the node
 * holds each package layer to them where it unpacks (pull/layer-claims.ts). Under
 * `containerd.io/snapshot/` like the diff_id above, so containerd hands them to hostpull's
 * snapshotter as labels too.
 */
/** `base` or `package`. */
export const LAYER_ROLE_ANNOTATION = 'containerd.io/snapshot/hostpull.role';
/** The package's code name. */
export const LAYER_CODENAME_ANNOTATION = 'containerd.io/snapshot/hostpull.codename';
/** The directory the package owns, absolute (`/opt/jdk-11.0`). */
export const LAYER_PREFIX_ANNOTATION = 'containerd.io/snapshot/hostpull.prefix';
/** `true` when the catalog entry allows setuid/setgid files and file capabilities. */
export const LAYER_ALLOW_SETUID_ANNOTATION = 'containerd.io/snapshot/hostpull.allow-setuid';
