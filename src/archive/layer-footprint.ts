import { isWithin, parentOf } from './entry-path.js';
import { isPrefixAncestor, type PackageClaim } from './package-claim.js';

/**
 * What a layer does to the tree, reduced to what a package claim is checked against, so a layer
 * unpacked once (under any image) can be checked against another image's claim from the store's
 * record, without reading the layer again.
 *
 * The reduction: a claim with prefix P holds when every entry that is not a neutral directory lies
 * inside P, and every neutral directory lies inside P or above it. The first condition holds for
 * all such entries exactly when it holds for their deepest common directory (`claimRoot`). For
 * neutral directories only the deepest ones matter (if a directory is inside or above P, so is
 * each of its ancestors: ancestors of one path form a chain), and of those only the ones outside
 * `claimRoot` (the rest are inside P once `claimRoot` is).
 */
export interface LayerFootprint {
  /** Deepest directory holding every entry that is not a neutral directory; `''` is the root; null when there is none. */
  claimRoot: string | null;
  /** The deepest neutral directories outside `claimRoot` (at most {@link MAX_NEUTRAL_DIRS}). */
  neutralDirs: string[];
  /** More neutral directories outside `claimRoot` than recorded: no package claim can hold. */
  neutralOverflow: boolean;
  /** Device nodes and fifos. */
  devices: number;
  /** Files with setuid or setgid bits (at most {@link MAX_LISTED} listed; `setidCount` counts all). */
  setid: string[];
  setidCount: number;
  /** Files carrying `security.capability` (at most {@link MAX_LISTED} listed). */
  capabilities: string[];
  capabilityCount: number;
}

const MAX_NEUTRAL_DIRS = 64;
const MAX_LISTED = 256;
/** Neutral directories kept while reading; past this, new ones count as claiming (stricter, never looser). */
const MAX_TRACKED_NEUTRAL = 4096;

/** Collects a layer's footprint from its entries, as read (normalised paths). */
export class FootprintBuilder {
  #claimRoot: string | null = null;
  readonly #neutral = new Set<string>();
  #devices = 0;
  readonly #setid: string[] = [];
  #setidCount = 0;
  readonly #caps: string[] = [];
  #capCount = 0;

  /** An entry that writes `path` with metadata of its own (anything but a neutral directory). */
  claiming(path: string): void {
    this.#claimRoot = this.#claimRoot === null ? path : commonDir(this.#claimRoot, path);
  }

  neutralDir(path: string): void {
    if (this.#neutral.size >= MAX_TRACKED_NEUTRAL && !this.#neutral.has(path)) {
      this.claiming(path);
      return;
    }
    this.#neutral.add(path);
  }

  device(path: string): void {
    this.#devices++;
    this.claiming(path);
  }

  setid(path: string): void {
    if (this.#setid.length < MAX_LISTED) this.#setid.push(path);
    this.#setidCount++;
  }

  capability(path: string): void {
    if (this.#caps.length < MAX_LISTED) this.#caps.push(path);
    this.#capCount++;
  }

  build(): LayerFootprint {
    const root = this.#claimRoot;
    const outside = [...this.#neutral].filter((d) => root === null || !isWithin(d, root));
    // Keep the deepest: drop every directory that is an ancestor of another one.
    const ancestors = new Set<string>();
    for (const d of outside) for (let p = d; p !== ''; ) ancestors.add((p = parentOf(p)));
    const deepest = outside.filter((d) => !ancestors.has(d)).sort();
    return {
      claimRoot: root,
      neutralDirs: deepest.slice(0, MAX_NEUTRAL_DIRS),
      neutralOverflow: deepest.length > MAX_NEUTRAL_DIRS,
      devices: this.#devices,
      setid: [...this.#setid].sort(),
      setidCount: this.#setidCount,
      capabilities: [...this.#caps].sort(),
      capabilityCount: this.#capCount,
    };
  }
}

/** The deepest directory containing both normalised paths (`''` when they share no first component). */
function commonDir(a: string, b: string): string {
  if (isWithin(b, a)) return a;
  if (isWithin(a, b)) return b;
  let p = parentOf(a);
  while (p !== '' && !isWithin(b, p)) p = parentOf(p);
  return p;
}

/** Why a layer with this footprint breaks the claim, or undefined when it keeps to it. */
export function footprintViolation(fp: LayerFootprint, claim: PackageClaim): { rule: string; reason: string } | undefined {
  const prefix = claim.prefix;
  if (fp.devices > 0) return { rule: 'device-in-package', reason: `holds ${fp.devices} device node(s) or fifo(s)` };
  if (fp.claimRoot !== null && !isWithin(fp.claimRoot, prefix)) {
    return isPrefixAncestor(fp.claimRoot, prefix)
      ? { rule: 'outside-prefix', reason: `writes outside /${prefix} (its entries span /${fp.claimRoot}), or changes the mode or owner of /${fp.claimRoot}` }
      : { rule: 'outside-prefix', reason: `writes /${fp.claimRoot}, outside /${prefix}` };
  }
  const stray = fp.neutralDirs.find((d) => !isWithin(d, prefix) && !isPrefixAncestor(d, prefix));
  if (stray !== undefined) return { rule: 'outside-prefix', reason: `writes directory /${stray}, outside /${prefix}` };
  if (fp.neutralOverflow) return { rule: 'outside-prefix', reason: `writes more than ${MAX_NEUTRAL_DIRS} directories outside its files' common directory` };
  if (!claim.allowSetuid && fp.setidCount > 0) {
    return { rule: 'setid-in-package', reason: `has setuid/setgid files (${fp.setid.slice(0, 3).map((p) => `/${p}`).join(', ')}) and its catalog entry does not allow them` };
  }
  if (!claim.allowSetuid && fp.capabilityCount > 0) {
    return { rule: 'capability-in-package', reason: `has files with capabilities (${fp.capabilities.slice(0, 3).map((p) => `/${p}`).join(', ')}) and its catalog entry does not allow them` };
  }
  return undefined;
}
