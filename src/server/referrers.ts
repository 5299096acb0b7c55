import { HostpullError } from '../errors.js';
import { digestAlgorithm, digestHex, digestOf, MediaType, parseManifest, type Descriptor, type Digest } from '../oci/index.js';
import type { Upstream } from './upstream.js';

/**
 * OCI referrers (distribution-spec v1.1 "Listing Referrers"): artifacts that point at a manifest
 * through their `subject`. CNCF distribution 2.8 and OCI layout directories have no referrers
 * API, so every referrer is also listed in the spec's tag-schema fallback: an image index tagged
 * `<alg>-<hex of the subject digest>` in the same repository. Reading takes the union of both.
 */

/** The tag-schema fallback tag of a subject: `sha256-<hex>`. */
export function referrersTag(subject: Digest): string {
  return `${digestAlgorithm(subject)}-${digestHex(subject)}`;
}

/** The empty JSON config of an artifact manifest (image-spec 1.1 "Guidance for an empty descriptor"). */
export const EMPTY_CONFIG = Buffer.from('{}');
export const EMPTY_CONFIG_DESCRIPTOR: Descriptor = { mediaType: MediaType.OciEmptyJson, digest: digestOf(EMPTY_CONFIG), size: 2 };

async function fallbackIndex(upstream: Upstream, repo: string, subject: Digest, signal?: AbortSignal): Promise<Descriptor[]> {
  const stored = await upstream.getManifest(repo, referrersTag(subject), signal);
  if (!stored) return [];
  const parsed = parseManifest(stored.bytes, stored.mediaType, `referrers index ${repo}:${referrersTag(subject)}`);
  return parsed.kind === 'index' ? parsed.index.manifests : [];
}

/** Referrers of `subject` in `repo` (API and fallback tag), optionally only those of one artifactType. */
export async function listReferrers(upstream: Upstream, repo: string, subject: Digest, artifactType?: string, signal?: AbortSignal): Promise<Descriptor[]> {
  const [api, fallback] = await Promise.all([upstream.referrersApi ? upstream.referrersApi(repo, subject, artifactType, signal) : null, fallbackIndex(upstream, repo, subject, signal)]);
  const seen = new Set<string>();
  const out: Descriptor[] = [];
  for (const d of [...(api ?? []), ...fallback]) {
    if (seen.has(d.digest) || (artifactType !== undefined && d.artifactType !== artifactType)) continue;
    seen.add(d.digest);
    out.push(d);
  }
  return out;
}

export interface ArtifactManifest {
  bytes: Buffer;
  digest: Digest;
  /** The index entry naming it (artifactType and annotations copied, as the spec asks). */
  descriptor: Descriptor;
}

/**
 * An artifact manifest (image-spec 1.1): empty config, `blobs` as layers, `subject` the manifest it
 * is attached to. Fixed key order, so the same inputs give the same digest.
 */
export function artifactManifest(artifactType: string, blobs: Descriptor[], subject: Descriptor, annotations: Record<string, string>): ArtifactManifest {
  const manifest = {
    schemaVersion: 2,
    mediaType: MediaType.OciManifest,
    artifactType,
    config: EMPTY_CONFIG_DESCRIPTOR,
    layers: blobs,
    subject: { mediaType: subject.mediaType, digest: subject.digest, size: subject.size },
    annotations,
  };
  const bytes = Buffer.from(JSON.stringify(manifest));
  const digest = digestOf(bytes);
  return { bytes, digest, descriptor: { mediaType: MediaType.OciManifest, digest, size: bytes.length, artifactType, annotations } };
}

/**
 * Pushes an artifact manifest and lists it in the subject's fallback index. Blobs (and the empty
 * config) must be pushed first. Two publishers updating one fallback index at the same moment can
 * lose an entry (a registry has no compare-and-swap on tags); publishing again repairs it.
 */
export async function attachReferrer(upstream: Upstream, repo: string, artifact: ArtifactManifest, subject: Digest, signal?: AbortSignal): Promise<void> {
  await upstream.putBlob(repo, EMPTY_CONFIG_DESCRIPTOR.digest, EMPTY_CONFIG.length, EMPTY_CONFIG, signal ? { signal } : {});
  const digest = await upstream.putManifest(repo, undefined, artifact.bytes, MediaType.OciManifest, signal);
  if (digest !== artifact.digest) {
    throw new HostpullError('UPSTREAM_ERROR', `${upstream.location} stored referrer manifest ${artifact.digest} as ${digest}`);
  }
  const existing = await fallbackIndex(upstream, repo, subject, signal);
  if (existing.some((d) => d.digest === artifact.digest)) return;
  const index = { schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: [...existing, artifact.descriptor] };
  await upstream.putManifest(repo, referrersTag(subject), Buffer.from(JSON.stringify(index)), MediaType.OciIndex, signal);
}
