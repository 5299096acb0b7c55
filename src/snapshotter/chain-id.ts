import { createHash } from 'node:crypto';
import type { Digest } from '../oci/index.js';

const CHAIN_RE = /^sha256:[0-9a-f]{64}$/;

/**
 * The chainID of a layer stacked on `parent` (image-spec config.md, "Layer ChainID"):
 * the diffID itself for the bottom layer, else sha256(parentChainID + " " + diffID).
 */
export function chainIdOf(parent: Digest | undefined, diffId: Digest): Digest {
  if (parent === undefined) return diffId;
  return `sha256:${createHash('sha256').update(`${parent} ${diffId}`).digest('hex')}` as Digest;
}

/**
 * The chainID a snapshot name carries, if any: containerd names the committed snapshot of an
 * image layer by its chainID, either bare (a layer a remote snapshotter committed as the target)
 * or as the key part of its backend key `<namespace>/<seq>/sha256:…`.
 */
export function chainIdOfName(name: string): Digest | undefined {
  const m = /^[^/]+\/[0-9]+\/(.*)$/.exec(name);
  const key = m ? m[1]! : name;
  return CHAIN_RE.test(key) ? (key as Digest) : undefined;
}

/** Which of `candidates` (diffIDs) makes `chainId` when stacked on `parent`, if any. */
export function diffIdForChain(chainId: Digest, parent: Digest | undefined, candidates: Iterable<Digest>): Digest | undefined {
  for (const d of candidates) if (chainIdOf(parent, d) === chainId) return d;
  return undefined;
}

/** containerd's key for applying a layer: `[<ns>/<seq>/]extract-<unique> sha256:<chainID>`. */
export function isExtractKey(key: string): boolean {
  return /^(?:[^/]+\/[0-9]+\/)?extract-\S+ sha256:[0-9a-f]{64}$/.test(key);
}
