import type { Logger } from '../log.js';
import type { Digest } from '../oci/index.js';
import type { ContentStore, LayerCommit, SnapshotRow } from '../store/index.js';
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
  await store.layers.commit(dir, await appliedLayerRecord(dir, diffId, blobDigest));
  return 'adopted';
}

/** The store's record of a tree containerd applied, read from the tree itself. */
async function appliedLayerRecord(dir: string, diffId: Digest, blobDigest: Digest | undefined): Promise<LayerCommit> {
  const [summary, scan] = await Promise.all([summarizeLayerDir(dir), scanLayerDir(dir)]);
  // An uncompressed layer's blob is its tar: the diffID stands in when containerd did not say.
  // Its footprint comes from the tree containerd wrote, so a later image's package claim is
  // checked against it like against a layer hostpull unpacked itself.
  return { diffId, blobDigest: blobDigest ?? diffId, ...summary, ...scan };
}

/**
 * Layers containerd applied through this snapshotter without saying which they were (`ctr image
 * pull` sends no labels): now that `candidates` are known (an image being pulled), the snapshots
 * they name become store layers, so later pulls of other images reuse them. The snapshot is
 * marked first: should the move not happen (crash), Mounts still finds its own fs/ (a crash
 * during the move included: reconcile puts it back, see LayerStore.adopt).
 * Serialised with fetches of the same blob by its lease, so no fetch commits the same layer while
 * its directory moves. A snapshot containerd removes meanwhile is skipped (see adoptSnapshotLayer).
 */
export async function identifyAppliedLayers(store: ContentStore, candidates: ReadonlyMap<Digest, Digest>, logger: Logger): Promise<SnapshotRow[]> {
  const done: SnapshotRow[] = [];
  for (const s of store.snapshots.unidentified()) {
    const diffId = identifyLayer(s.name, s.parent, candidates.keys());
    if (!diffId || !candidates.has(diffId)) continue;
    const blob = candidates.get(diffId);
    if (!store.snapshots.markDiffId(s, diffId)) {
      logger.debug({ snapshot: s.name, id: s.id, diffId }, 'snapshotter: snapshot removed or identified since it was listed; not adopting it');
      continue;
    }
    store.snapshotLog.identify(chainIdOfName(s.name)!, diffId, blob ?? null);
    const outcome = await store.leases.forBlob(blob ?? diffId, {
      done: () => (store.layers.get(diffId) ? 'present' : undefined),
      work: () => adoptSnapshotLayer(store, s, diffId, blob),
    });
    if (outcome === 'gone') {
      logger.debug({ snapshot: s.name, id: s.id, diffId }, 'snapshotter: snapshot removed while its layer was being scanned; not adopting it');
      continue;
    }
    done.push(s);
  }
  return done;
}

/**
 * adoptLayerDir for committed snapshot `s`, which containerd may Remove at any moment: the scan
 * reads snapshots/<id>/fs with no lock held, and a Remove moves that directory aside and frees
 * the id, which the next Prepare takes (snapshots.ts: MAX(id)+1), so the same path may then be a
 * new snapshot's fs/. A scan that fails on a snapshot no longer there (ENOENT, or whatever a tree
 * moving under it does) is 'gone', not an error of the image; and the move into layers/ happens
 * only if, in the adopting transaction, `s` still exists with its id and its mark.
 */
async function adoptSnapshotLayer(store: ContentStore, s: SnapshotRow, diffId: Digest, blobDigest: Digest | undefined): Promise<'adopted' | 'present' | 'gone'> {
  if (store.layers.get(diffId)) return 'present';
  const dir = store.snapshots.dir(s).fs;
  let record: LayerCommit;
  try {
    record = await appliedLayerRecord(dir, diffId, blobDigest);
  } catch (err) {
    if (!store.snapshots.holds(s, diffId)) return 'gone';
    throw err;
  }
  return store.layers.adopt(s, record, () => store.snapshots.holds(s, diffId));
}
