import { HostpullError } from '../errors.js';
import type { Digest } from './digest.js';
import { array, checked, digest, field, natural, object, present, record, ShapeError, string } from './json-shape.js';
import { isConfigType, isImageManifestType, isIndexType, MediaType } from './mediatypes.js';

/** distribution-spec: registries SHOULD accept manifests up to 4 MiB; we refuse to read more. */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
/** An image config is JSON metadata; 8 MiB is far above any real one and bounds memory. */
export const MAX_CONFIG_BYTES = 8 * 1024 * 1024;

/** PATH of a container whose image config sets none (the value Docker and `runc spec` use). */
export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export interface Platform {
  architecture: string;
  os: string;
  'os.version'?: string | undefined;
  'os.features'?: string[] | undefined;
  variant?: string | undefined;
}

export interface Descriptor {
  mediaType: string;
  digest: Digest;
  size: number;
  urls?: string[] | undefined;
  annotations?: Record<string, string> | undefined;
  platform?: Platform | undefined;
  artifactType?: string | undefined;
}

export interface ImageManifest {
  schemaVersion: 2;
  mediaType?: string | undefined;
  artifactType?: string | undefined;
  config: Descriptor;
  layers: Descriptor[];
  subject?: Descriptor | undefined;
  annotations?: Record<string, string> | undefined;
}

export interface ImageIndex {
  schemaVersion: 2;
  mediaType?: string | undefined;
  artifactType?: string | undefined;
  manifests: Descriptor[];
  subject?: Descriptor | undefined;
  annotations?: Record<string, string> | undefined;
}

export interface ImageConfig {
  created?: string | undefined;
  author?: string | undefined;
  architecture: string;
  os: string;
  variant?: string | undefined;
  config?:
    | {
        User?: string | undefined;
        ExposedPorts?: Record<string, unknown> | undefined;
        Env?: string[] | null | undefined;
        Entrypoint?: string[] | null | undefined;
        Cmd?: string[] | null | undefined;
        Volumes?: Record<string, unknown> | null | undefined;
        WorkingDir?: string | undefined;
        Labels?: Record<string, string> | null | undefined;
        StopSignal?: string | undefined;
      }
    | undefined;
  rootfs: { type: 'layers'; diff_ids: Digest[] };
  history?: Array<Record<string, unknown>> | undefined;
}

// The readers below check what the OCI image spec says of each field (and Docker's nulls in a
// config), by hand (see json-shape.ts for why); the fields are kept in the spec's order.
const str = (v: unknown, path: string): string => string(v, path);
const nonEmpty = (v: unknown, path: string): string => string(v, path, { nonEmpty: true });
const strings = (v: unknown, path: string): string[] => array(v, path, str);
const anything = (v: unknown): unknown => v;

function annotations(o: Record<string, unknown>, path: string): Record<string, string> | undefined {
  return field(o, 'annotations', path, (v, p) => record(v, p, str), 'optional');
}

function platform(v: unknown, path: string): Platform {
  const o = object(v, path);
  return present({
    architecture: field(o, 'architecture', path, nonEmpty),
    os: field(o, 'os', path, nonEmpty),
    'os.version': field(o, 'os.version', path, str, 'optional'),
    'os.features': field(o, 'os.features', path, strings, 'optional'),
    variant: field(o, 'variant', path, str, 'optional'),
  });
}

function descriptor(v: unknown, path: string): Descriptor {
  const o = object(v, path);
  return present({
    mediaType: field(o, 'mediaType', path, nonEmpty),
    digest: field(o, 'digest', path, digest),
    size: field(o, 'size', path, natural),
    urls: field(o, 'urls', path, strings, 'optional'),
    annotations: annotations(o, path),
    platform: field(o, 'platform', path, platform, 'optional'),
    artifactType: field(o, 'artifactType', path, str, 'optional'),
  });
}

function schemaVersion2(o: Record<string, unknown>): 2 {
  if (o.schemaVersion !== 2) throw new ShapeError('schemaVersion', `${JSON.stringify(o.schemaVersion) ?? 'absent'}, not 2`);
  return 2;
}

function imageManifest(o: Record<string, unknown>): ImageManifest {
  return present({
    schemaVersion: schemaVersion2(o),
    mediaType: field(o, 'mediaType', '', str, 'optional'),
    artifactType: field(o, 'artifactType', '', str, 'optional'),
    config: field(o, 'config', '', descriptor),
    layers: field(o, 'layers', '', (v, p) => array(v, p, descriptor)),
    subject: field(o, 'subject', '', descriptor, 'optional'),
    annotations: annotations(o, ''),
  });
}

function imageIndex(o: Record<string, unknown>): ImageIndex {
  return present({
    schemaVersion: schemaVersion2(o),
    mediaType: field(o, 'mediaType', '', str, 'optional'),
    artifactType: field(o, 'artifactType', '', str, 'optional'),
    manifests: field(o, 'manifests', '', (v, p) => array(v, p, descriptor)),
    subject: field(o, 'subject', '', descriptor, 'optional'),
    annotations: annotations(o, ''),
  });
}

function runConfig(v: unknown, path: string): NonNullable<ImageConfig['config']> {
  const o = object(v, path);
  return present({
    User: field(o, 'User', path, str, 'optional'),
    ExposedPorts: field(o, 'ExposedPorts', path, (x, p) => record(x, p, anything), 'optional'),
    Env: field(o, 'Env', path, strings, 'nullable'),
    Entrypoint: field(o, 'Entrypoint', path, strings, 'nullable'),
    Cmd: field(o, 'Cmd', path, strings, 'nullable'),
    Volumes: field(o, 'Volumes', path, (x, p) => record(x, p, anything), 'nullable'),
    WorkingDir: field(o, 'WorkingDir', path, str, 'optional'),
    Labels: field(o, 'Labels', path, (x, p) => record(x, p, str), 'nullable'),
    StopSignal: field(o, 'StopSignal', path, str, 'optional'),
  });
}

function imageConfig(v: unknown): ImageConfig {
  const o = object(v, '');
  const rootfs = field(o, 'rootfs', '', object);
  if (rootfs.type !== 'layers') throw new ShapeError('rootfs.type', `${JSON.stringify(rootfs.type) ?? 'absent'}, not "layers"`);
  return present({
    created: field(o, 'created', '', str, 'optional'),
    author: field(o, 'author', '', str, 'optional'),
    architecture: field(o, 'architecture', '', nonEmpty),
    os: field(o, 'os', '', nonEmpty),
    variant: field(o, 'variant', '', str, 'optional'),
    config: field(o, 'config', '', runConfig, 'optional'),
    rootfs: { type: 'layers' as const, diff_ids: field(rootfs, 'diff_ids', 'rootfs', (x, p) => array(x, p, digest)) },
    history: field(o, 'history', '', (x, p) => array(x, p, (h, hp) => record(h, hp, anything)), 'optional'),
  });
}

export type ParsedManifest =
  | { kind: 'manifest'; mediaType: string; manifest: ImageManifest }
  | { kind: 'index'; mediaType: string; index: ImageIndex };

function invalid(what: string, why: string): HostpullError {
  return new HostpullError('MANIFEST_INVALID', `${what}: ${why}`);
}

function parseJson(bytes: Uint8Array, what: string, limit: number): unknown {
  if (bytes.byteLength > limit) throw invalid(what, `${bytes.byteLength} bytes exceeds the ${limit}-byte limit`);
  try {
    return JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'));
  } catch (err) {
    throw invalid(what, `not valid JSON (${(err as Error).message})`);
  }
}

/**
 * Parses manifest bytes as served. The media type comes from the body's `mediaType` field, else
 * from the Content-Type the registry sent; the two must agree when both are present, so a
 * registry cannot make us read an index as a manifest.
 */
export function parseManifest(bytes: Uint8Array, contentType?: string, what = 'manifest'): ParsedManifest {
  const json = parseJson(bytes, what, MAX_MANIFEST_BYTES);
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw invalid(what, 'not a JSON object');
  const body = json as Record<string, unknown>;
  const declared = typeof body.mediaType === 'string' ? body.mediaType : undefined;
  const header = contentType?.split(';')[0]?.trim();
  const headerUseful = header && (isImageManifestType(header) || isIndexType(header));
  if (declared && headerUseful && declared !== header) {
    throw invalid(what, `body says mediaType ${declared} but the registry sent Content-Type ${header}`);
  }
  if (body.schemaVersion === 1) {
    throw new HostpullError('MANIFEST_UNSUPPORTED', `${what} is Docker schema 1, which is deprecated and unsupported`, {
      hint: 'push the image again with a current client (OCI or Docker schema 2)',
    });
  }
  let mediaType = declared ?? (headerUseful ? header : undefined);
  if (!mediaType) {
    // OCI allows mediaType to be absent; tell manifest from index by shape.
    mediaType = Array.isArray(body.manifests) ? MediaType.OciIndex : MediaType.OciManifest;
  }
  if (isImageManifestType(mediaType)) {
    return { kind: 'manifest', mediaType, manifest: checked(() => imageManifest(body), (why) => invalid(what, why)) };
  }
  if (isIndexType(mediaType)) {
    return { kind: 'index', mediaType, index: checked(() => imageIndex(body), (why) => invalid(what, why)) };
  }
  throw new HostpullError('MANIFEST_UNSUPPORTED', `${what} has unsupported media type ${mediaType}`, {
    hint: 'OCI and Docker schema 2 manifests and indexes are supported',
  });
}

/** Parses and validates an image config blob. */
export function parseImageConfig(bytes: Uint8Array, what = 'image config'): ImageConfig {
  const json = parseJson(bytes, what, MAX_CONFIG_BYTES);
  return checked(() => imageConfig(json), (why) => new HostpullError('CONFIG_INVALID', `${what}: ${why}`));
}

/**
 * Checks that a manifest describes a runnable image: a config of a config media type and as many
 * diff_ids as layers. Called once the config is known.
 */
export function checkManifestAgainstConfig(manifest: ImageManifest, config: ImageConfig, what = 'image'): void {
  if (!isConfigType(manifest.config.mediaType)) {
    throw new HostpullError('MANIFEST_UNSUPPORTED', `${what}: config media type ${manifest.config.mediaType} is not an image config`, {
      hint: 'this looks like an OCI artifact, not a container image',
    });
  }
  if (config.rootfs.diff_ids.length !== manifest.layers.length) {
    throw new HostpullError(
      'CONFIG_INVALID',
      `${what}: manifest has ${manifest.layers.length} layers but config lists ${config.rootfs.diff_ids.length} diff_ids`,
    );
  }
}
