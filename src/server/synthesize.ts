import { digestOf, MediaType, type Descriptor, type Digest, type ImageConfig, CODENAMES_ANNOTATION, LAYER_ALLOW_SETUID_ANNOTATION, LAYER_CODENAME_ANNOTATION, LAYER_DIFF_ID_ANNOTATION, LAYER_PREFIX_ANNOTATION, LAYER_ROLE_ANNOTATION, PACKAGES_ANNOTATION, TOC_ANNOTATION } from '../oci/index.js';
import { mergeEnv, parseEnvList, type PackageEnv } from './env-merge.js';
import type { CatalogEntry } from './catalog-entry.js';


const EPOCH = '1970-01-01T00:00:00Z';

/** A package image reduced to what a composite needs from it. */
export interface ResolvedPackage {
  code: string;
  entry: CatalogEntry;
  manifestDigest: Digest;
  layer: Descriptor;
  diffId: Digest;
  config: ImageConfig;
  /** The layer's table of contents (a seekable layer), when the package has one. */
  toc?: Descriptor | undefined;
}

export interface ResolvedBase {
  /** The reference as configured (for annotations). */
  name: string;
  manifestDigest: Digest;
  layers: Descriptor[];
  config: ImageConfig;
  /** Each layer's table of contents (aligned with `layers`), where the base is seekable. */
  tocs?: Array<Descriptor | undefined>;
}

export interface SynthesizedImage {
  manifest: Buffer;
  manifestDigest: Digest;
  config: Buffer;
  configDigest: Digest;
}

/** What a composite's manifest says about one of its layers. */
export interface LayerFacts {
  /** The layer's uncompressed digest (its config's diff_id). */
  diffId: Digest;
  /** The code name of a package layer (none for a base layer). */
  code?: string;
  /** The catalog entry of a package layer: the prefix it owns and its setuid allowance. */
  entry?: Pick<CatalogEntry, 'prefix' | 'allowSetuid'>;
  /** The digest of the layer's table of contents, when it is seekable (lazy pulling). */
  toc?: Digest;
}

/**
 * The annotations of one layer descriptor in a composite: the place where parts that read
 * composites on nodes get per-layer facts from the server. Today: the package's code name as the
 * title, the diff_id for the containerd snapshotter (containerd hands it over as a label), the
 * claim the layer is held to (isolationAnnotations) and, for a seekable layer, the digest of its
 * table of contents (`dev.hostpull.toc`, for lazy pulling).
 */
function layerAnnotations(layer: LayerFacts): Record<string, string> {
  const out: Record<string, string> = { [LAYER_DIFF_ID_ANNOTATION]: layer.diffId, ...isolationAnnotations(layer) };
  if (layer.code !== undefined) out['org.opencontainers.image.title'] = layer.code;
  if (layer.toc !== undefined) out[TOC_ANNOTATION] = layer.toc;
  return sortedRecord(out);
}

/**
 * The claim a layer is held to on every node (DESIGN §2 "The trust boundary"): a base layer may
 * touch the whole tree; a package layer only its prefix, with setuid only when its catalog entry
 * allows it. Nodes read these annotations (pull/layer-claims.ts), so they must say what
 * registration checked.
 */
function isolationAnnotations(layer: LayerFacts): Record<string, string> {
  if (layer.code === undefined || layer.entry === undefined) return { [LAYER_ROLE_ANNOTATION]: 'base' };
  return {
    [LAYER_ROLE_ANNOTATION]: 'package',
    [LAYER_CODENAME_ANNOTATION]: layer.code,
    [LAYER_PREFIX_ANNOTATION]: layer.entry.prefix,
    ...(layer.entry.allowSetuid === true ? { [LAYER_ALLOW_SETUID_ANNOTATION]: 'true' } : {}),
  };
}

/**
 * Same bytes in another manifest: Docker's gzip layer type is spelled the OCI way because an OCI
 * manifest with Docker layer types is refused by some clients; the blob (and digest) is unchanged.
 */
function layerDescriptor(d: Descriptor, facts: LayerFacts): Descriptor {
  const mediaType = d.mediaType === MediaType.DockerLayerGzip ? MediaType.OciLayerGzip : d.mediaType;
  return { mediaType, digest: d.digest, size: d.size, annotations: layerAnnotations(facts) };
}

function sortedRecord(r: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of Object.keys(r).sort()) out[k] = r[k]!;
  return out;
}

/**
 * A stable `created`: the newest package/base creation time, else the epoch. Wall-clock time
 * would give a new digest per request and defeat caching on every node.
 */
function stableCreated(configs: readonly ImageConfig[]): string {
  let best = 0;
  for (const c of configs) {
    const t = c.created ? Date.parse(c.created) : NaN;
    if (Number.isFinite(t) && t > best) best = t;
  }
  return best > 0 ? new Date(best).toISOString().replace(/\.000Z$/, 'Z') : EPOCH;
}

/** The environment a package contributes: its config's Env (without PATH) overlaid by the catalog's env. */
function packageEnv(pkg: ResolvedPackage): PackageEnv {
  const env = parseEnvList(pkg.config.config?.Env);
  delete env.PATH;
  return { code: pkg.code, env: { ...env, ...pkg.entry.env }, pathAdd: pkg.entry.pathAdd };
}

/**
 * Builds the composite's config and manifest. The JSON is produced from objects built in a fixed
 * key order with no whitespace, so equal inputs give equal bytes and thus an equal digest; the
 * packages must arrive in canonical (sorted code name) order.
 */
export function synthesizeComposite(packages: readonly ResolvedPackage[], base?: ResolvedBase): SynthesizedImage {
  const codes = packages.map((p) => p.code);
  const tag = codes.join('-');
  const baseConfig = base?.config;
  const platformFrom = baseConfig ?? packages[0]?.config;
  const created = stableCreated([...(baseConfig ? [baseConfig] : []), ...packages.map((p) => p.config)]);
  const env = mergeEnv(parseEnvList(baseConfig?.config?.Env), packages.map(packageEnv));

  const runConfig: Record<string, unknown> = { Env: env };
  const bc = baseConfig?.config;
  if (bc?.Entrypoint) runConfig.Entrypoint = bc.Entrypoint;
  if (bc?.Cmd) runConfig.Cmd = bc.Cmd;
  if (bc?.WorkingDir) runConfig.WorkingDir = bc.WorkingDir;
  if (bc?.User) runConfig.User = bc.User;
  runConfig.Labels = sortedRecord({ ...(bc?.Labels ?? {}), [CODENAMES_ANNOTATION]: tag });

  const baseDiffIds = baseConfig?.rootfs.diff_ids ?? [];
  const baseHistory = (baseConfig?.history ?? []).filter((h) => h.empty_layer !== true);
  const history: Array<Record<string, unknown>> =
    base && baseHistory.length === base.layers.length
      ? baseHistory.map((h) => ({ created: typeof h.created === 'string' ? h.created : created, created_by: typeof h.created_by === 'string' ? h.created_by : `base ${base.name}` }))
      : (base?.layers ?? []).map(() => ({ created, created_by: `base ${base!.name}` }));
  for (const p of packages) history.push({ created, created_by: `hostpull package ${p.code} (${p.entry.image}) at ${p.entry.prefix}` });

  const config: Record<string, unknown> = {
    created,
    architecture: platformFrom?.architecture ?? 'amd64',
    os: platformFrom?.os ?? 'linux',
  };
  if (platformFrom?.variant) config.variant = platformFrom.variant;
  config.config = runConfig;
  config.rootfs = { type: 'layers', diff_ids: [...baseDiffIds, ...packages.map((p) => p.diffId)] };
  config.history = history;
  const configBytes = Buffer.from(JSON.stringify(config));
  const configDigest = digestOf(configBytes);

  const packageDigests: Record<string, string> = {};
  for (const p of packages) packageDigests[p.code] = p.manifestDigest;
  const annotations: Record<string, string> = {
    [CODENAMES_ANNOTATION]: tag,
    [PACKAGES_ANNOTATION]: JSON.stringify(packageDigests),
    'org.opencontainers.image.created': created,
    'org.opencontainers.image.title': tag,
    'org.opencontainers.image.description': `hostpull composite of ${codes.join(', ')}`,
  };
  if (base) {
    annotations['org.opencontainers.image.base.name'] = base.name;
    annotations['org.opencontainers.image.base.digest'] = base.manifestDigest;
  }
  const manifest = {
    schemaVersion: 2,
    mediaType: MediaType.OciManifest,
    config: { mediaType: MediaType.OciConfig, digest: configDigest, size: configBytes.length },
    layers: [
      ...(base?.layers ?? []).map((l, i) => layerDescriptor(l, { diffId: baseDiffIds[i]!, ...(base?.tocs?.[i] ? { toc: base.tocs[i]!.digest } : {}) })),
      ...packages.map((p) => layerDescriptor(p.layer, { diffId: p.diffId, code: p.code, entry: p.entry, ...(p.toc ? { toc: p.toc.digest } : {}) })),
    ],
    annotations: sortedRecord(annotations),
  };
  const manifestBytes = Buffer.from(JSON.stringify(manifest));
  return { manifest: manifestBytes, manifestDigest: digestOf(manifestBytes), config: configBytes, configDigest };
}
