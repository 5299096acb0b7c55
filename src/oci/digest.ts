import { createHash, type Hash } from 'node:crypto';
import { HostpullError } from '../errors.js';

/**
 * A content digest `algorithm:hex` (OCI image-spec, descriptor.md "Digests"). Branded so that a
 * plain string cannot be passed where a verified digest is expected. The same type serves for
 * compressed blob digests and for uncompressed diffIDs; the two are kept apart by naming
 * (`digest` vs `diffId`) everywhere they meet.
 */
export type Digest = string & { readonly __brand: 'Digest' };

export type DigestAlgorithm = 'sha256' | 'sha512';

const HEX_LENGTH: Record<DigestAlgorithm, number> = { sha256: 64, sha512: 128 };
const DIGEST_RE = /^([a-z0-9]+(?:[.+_-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)$/;

export function isDigest(value: unknown): value is Digest {
  if (typeof value !== 'string') return false;
  const m = DIGEST_RE.exec(value);
  if (!m) return false;
  // Object.hasOwn, not a plain lookup or `in`: `constructor:…` must not find Object.prototype's member.
  if (!Object.hasOwn(HEX_LENGTH, m[1]!)) return false;
  return m[2]!.length === HEX_LENGTH[m[1] as DigestAlgorithm] && /^[a-f0-9]+$/.test(m[2]!);
}

/** Parses and validates a digest; only sha256 and sha512 with lowercase hex are accepted. */
export function parseDigest(value: string, what = 'digest'): Digest {
  if (isDigest(value)) return value;
  const m = DIGEST_RE.exec(value);
  if (m && !Object.hasOwn(HEX_LENGTH, m[1]!)) {
    throw new HostpullError('DIGEST_INVALID', `${what} ${JSON.stringify(value)} uses unsupported algorithm ${m[1]}`, {
      hint: 'sha256 and sha512 digests are supported',
    });
  }
  throw new HostpullError('DIGEST_INVALID', `${what} ${JSON.stringify(value)} is not a valid digest`, {
    hint: 'expected sha256:<64 lowercase hex> or sha512:<128 lowercase hex>',
  });
}

export function digestAlgorithm(digest: Digest): DigestAlgorithm {
  return digest.slice(0, digest.indexOf(':')) as DigestAlgorithm;
}

export function digestHex(digest: Digest): string {
  return digest.slice(digest.indexOf(':') + 1);
}

export function createDigester(algorithm: DigestAlgorithm = 'sha256'): Hash {
  return createHash(algorithm);
}

/** Digest of bytes already in memory (manifests, configs: small by construction). */
export function digestOf(data: Uint8Array | string, algorithm: DigestAlgorithm = 'sha256'): Digest {
  return `${algorithm}:${createHash(algorithm).update(data).digest('hex')}` as Digest;
}

/** `hash.digest('hex')` of a finished digester, as a Digest. */
export function digestFromHash(hash: Hash, algorithm: DigestAlgorithm): Digest {
  return `${algorithm}:${hash.digest('hex')}` as Digest;
}

/** Shortened form for messages: `sha256:0123456789ab…`. */
export function shortDigest(digest: string): string {
  const i = digest.indexOf(':');
  return i < 0 ? digest.slice(0, 12) : `${digest.slice(0, i + 13)}…`;
}
