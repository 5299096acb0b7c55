import type { Digest } from '../oci/index.js';
import type { ContentStore, SnapshotRow } from '../store/index.js';
import { chainIdOfName, diffIdForChain } from './chain-id.js';
import { summarizeLayerDir } from './layer-dir-summary.js';
import { scanLayerDir } from './scan-layer-dir.js';

/** diffID → compressed digest, for every layer the store knows (unpacked, or in a pulled image). */
export function knownLayers(store: ContentStore): Map<Digest, Digest> {
  return new Map([...store.images.listedLayers(), ...store.layers.list().map((l) => [l.diffId, l.blobDigest] as const)]);
}

/**
 * Which layer a committed snapshot holds, from its name: containerd names an image layer's
 * snapshot by its chainID, and chainID = sha256(parent's chainID + " " + diffID), so the
 * candidate that reproduces the name is the layer (containerd checked the diffID when it applied
 * it). The bottom layer's chainID is its diffID.
 */
export function identifyLayer(
  name: string,
  parent: string | null,
  candidates: Iterable<Digest>,
): Digest | undefined {
  const chain = chainIdOfName(name);
  if (!chain) return undefined;
  if (parent === null) return chain;
  const parentChain = chainIdOfName(parent);
  return parentChain ? diffIdForChain(chain, parentChain, candidates) : undefined;
}

/**
 * Makes `dir` — a tree containerd applied, in overlay format (whiteouts as 0:0 devices, opaque
 * xattrs) like hostpull's own unpacks — the store's layer `diffId` by moving it to layers/<id>.
 * 'present' when the store has the layer already (dir is left alone). The move is a rename, so
 * an overlay that uses dir as a lowerdir right now keeps working.
 */
export async function adoptLayerDir(store: ContentStore, dir: string, diffId: Digest, blobDigest: Digest | undefined): Promise<'adopted' | 'present'> {
  if (store.layers.get(diffId)) return 'present';
  const [summary, scan] = await Promise.all([summarizeLayerDir(dir), scanLayerDir(dir)]);
  // An uncompressed layer's blob is its tar: the diffID stands in when containerd did not say.
  // Its footprint comes from the tree containerd wrote, so a later image's package claim is
  // checked against it like against a layer hostpull unpacked itself.
  await store.layers.commit(dir, { diffId, blobDigest: blobDigest ?? diffId, ...summary, ...scan });
  return 'adopted';
}

/**
 * Layers containerd applied through this snapshotter without saying which they were (`ctr image
 * pull` sends no labels): now that `candidates` are known (an image being pulled), the snapshots
 * they name become store layers, so later pulls of other images reuse them. The snapshot is
 * marked first: should the move not happen (crash), Mounts still finds its own fs/.
 * Serialised with fetches of the same blob by its lease, so no fetch commits the same layer while
 * its directory moves.
 */
export async function identifyAppliedLayers(store: ContentStore, candidates: ReadonlyMap<Digest, Digest>): Promise<SnapshotRow[]> {
  const done: SnapshotRow[] = [];
  for (const s of store.snapshots.unidentified()) {
    const diffId = identifyLayer(s.name, s.parent, candidates.keys());
    if (!diffId || !candidates.has(diffId)) continue;
    const blob = candidates.get(diffId);
    store.snapshots.markDiffId(s.name, diffId);
    store.snapshotLog.identify(chainIdOfName(s.name)!, diffId, blob ?? null);
    await store.leases.forBlob(blob ?? diffId, {
      done: () => store.layers.get(diffId),
      work: async () => {
        await adoptLayerDir(store, store.snapshots.dir(s).fs, diffId, blob);
        return store.layers.get(diffId)!;
      },
    });
    done.push(s);
  }
  return done;
}
