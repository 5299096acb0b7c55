import { createRequire } from 'node:module';
import type { z } from 'zod/v3';
import { HostpullError } from '../errors.js';
import { isDigest, type Digest } from './digest.js';
import { isConfigType, isImageManifestType, isIndexType, MediaType } from './mediatypes.js';

/** distribution-spec: registries SHOULD accept manifests up to 4 MiB; we refuse to read more. */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
/** An image config is JSON metadata; 8 MiB is far above any real one and bounds memory. */
export const MAX_CONFIG_BYTES = 8 * 1024 * 1024;

/** PATH of a container whose image config sets none (the value Docker and `runc spec` use). */
export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/**
 * The schemas, built when something is first validated. zod's v3 API, shipped inside zod 4: it
 * loads in ~25 ms against ~90 ms for the v4 entry point, and every short command (pull, run,
 * inspect) parses manifests; the daemon and server use v4. Loaded on first use rather than with
 * the module, so that whatever imports the oci face for a digest or a reference (every CLI verb,
 * for `--help` too) does not pay for it.
 */
function buildSchemas() {
  const { z } = createRequire(import.meta.url)('zod/v3') as typeof import('zod/v3');
  const digest = z.string().refine(isDigest, { message: 'not a valid sha256/sha512 digest' }) as unknown as z.ZodType<Digest>;
  const annotations = z.record(z.string(), z.string()).optional();
  const platform = z.object({
    architecture: z.string().min(1),
    os: z.string().min(1),
    'os.version': z.string().optional(),
    'os.features': z.array(z.string()).optional(),
    variant: z.string().optional(),
  });
  const descriptor = z.object({
    mediaType: z.string().min(1),
    digest,
    size: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
    urls: z.array(z.string()).optional(),
    annotations,
    platform: platform.optional(),
    artifactType: z.string().optional(),
  });
  const imageManifest = z.object({
    schemaVersion: z.literal(2),
    mediaType: z.string().optional(),
    artifactType: z.string().optional(),
    config: descriptor,
    layers: z.array(descriptor),
    subject: descriptor.optional(),
    annotations,
  });
  const imageIndex = z.object({
    schemaVersion: z.literal(2),
    mediaType: z.string().optional(),
    artifactType: z.string().optional(),
    manifests: z.array(descriptor),
    subject: descriptor.optional(),
    annotations,
  });
  const imageConfig = z.object({
    created: z.string().optional(),
    author: z.string().optional(),
    architecture: z.string().min(1),
    os: z.string().min(1),
    variant: z.string().optional(),
    config: z
      .object({
        User: z.string().optional(),
        ExposedPorts: z.record(z.string(), z.unknown()).optional(),
        Env: z.array(z.string()).optional().nullable(),
        Entrypoint: z.array(z.string()).optional().nullable(),
        Cmd: z.array(z.string()).optional().nullable(),
        Volumes: z.record(z.string(), z.unknown()).optional().nullable(),
        WorkingDir: z.string().optional(),
        Labels: z.record(z.string(), z.string()).optional().nullable(),
        StopSignal: z.string().optional(),
      })
      .optional(),
    rootfs: z.object({
      type: z.literal('layers'),
      diff_ids: z.array(digest),
    }),
    history: z.array(z.record(z.string(), z.unknown())).optional(),
  });
  return { platform, descriptor, imageManifest, imageIndex, imageConfig };
}

type Schemas = ReturnType<typeof buildSchemas>;
let built: Schemas | undefined;
function schemas(): Schemas {
  built ??= buildSchemas();
  return built;
}

export type Platform = z.infer<Schemas['platform']>;
export type Descriptor = z.infer<Schemas['descriptor']>;
export type ImageManifest = z.infer<Schemas['imageManifest']>;
export type ImageIndex = z.infer<Schemas['imageIndex']>;
export type ImageConfig = z.infer<Schemas['imageConfig']>;

export type ParsedManifest =
  | { kind: 'manifest'; mediaType: string; manifest: ImageManifest }
  | { kind: 'index'; mediaType: string; index: ImageIndex };

function invalid(what: string, why: string): HostpullError {
  return new HostpullError('MANIFEST_INVALID', `${what}: ${why}`);
}

function zodWhy(error: z.ZodError): string {
  return error.issues
    .slice(0, 5)
    .map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`)
    .join('; ');
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
    const r = schemas().imageManifest.safeParse(body);
    if (!r.success) throw invalid(what, zodWhy(r.error));
    return { kind: 'manifest', mediaType, manifest: r.data };
  }
  if (isIndexType(mediaType)) {
    const r = schemas().imageIndex.safeParse(body);
    if (!r.success) throw invalid(what, zodWhy(r.error));
    return { kind: 'index', mediaType, index: r.data };
  }
  throw new HostpullError('MANIFEST_UNSUPPORTED', `${what} has unsupported media type ${mediaType}`, {
    hint: 'OCI and Docker schema 2 manifests and indexes are supported',
  });
}

/** Parses and validates an image config blob. */
export function parseImageConfig(bytes: Uint8Array, what = 'image config'): ImageConfig {
  const json = parseJson(bytes, what, MAX_CONFIG_BYTES);
  const r = schemas().imageConfig.safeParse(json);
  if (!r.success) throw new HostpullError('CONFIG_INVALID', `${what}: ${zodWhy(r.error)}`);
  return r.data;
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
