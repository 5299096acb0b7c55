import { existsSync } from 'node:fs';
import { readdir, rm } from 'node:fs/promises';
import { HostpullError, isHostpullError } from '../errors.js';
import type { Logger } from '../log.js';
import { LAYER_DIFF_ID_ANNOTATION, type Digest } from '../oci/index.js';
import type { ContentStore, SnapshotKind, SnapshotRow } from '../store/index.js';
import { adoptLayerDir, identifyLayer, knownLayers } from './adopt-applied-layer.js';
import { chainIdOfName, isExtractKey } from './chain-id.js';
import { compileFilters } from './filters.js';
import { CRI_LAYER_DIGEST_LABEL, TARGET_REF_LABEL, type Labels } from './labels.js';
import { summarizeLayerDir } from './layer-dir-summary.js';
import type { LazySnapshotLayers } from './lazy-snapshot-layers.js';
import type { RemoteLayers } from './remote-layers.js';
import { snapshotMounts, type ContainerdMount } from './snapshot-mounts.js';

export interface SnapshotInfo {
  name: string;
  /** '' for none, as containerd has it. */
  parent: string;
  kind: SnapshotKind;
  createdAt: number;
  updatedAt: number;
  labels: Labels;
}

/** Prepare either returns mounts, or says the target containerd asked for is committed already. */
export type PrepareResult = { mounts: ContainerdMount[] } | { committed: string };

export interface SnapshotterDeps {
  store: ContentStore;
  logger: Logger;
  /** Makes layers present for CRI pulls; without it every layer is left to containerd. */
  remote?: RemoteLayers;
  /** The lazy layers `remote` serves (it is built with the same one): the FUSE dirs of layers still arriving, held per snapshot. */
  lazy?: LazySnapshotLayers;
}

function info(row: SnapshotRow): SnapshotInfo {
  return { name: row.name, parent: row.parent ?? '', kind: row.kind, createdAt: row.createdAt, updatedAt: row.updatedAt, labels: row.labels };
}

const NO_TARGET = 'no containerd.io/snapshot.ref label: containerd applies the layer itself (ctr image pull, or a client that does not ask for remote snapshots)';

/**
 * containerd's snapshots.v1 semantics over hostpull's store (DESIGN §6): chains are rows; a
 * committed layer snapshot stands for an unpacked layer keyed by diffID, so the same directory
 * serves every chain and every namespace it appears in; active and view snapshots own fs/ and
 * work/; Mounts is an overlay of the ancestors' layer directories. Errors are HostpullErrors
 * with SNAPSHOT_* codes, which the gRPC edge maps to containerd's status codes.
 */
export class Snapshotter {
  readonly #store: ContentStore;
  readonly #logger: Logger;
  readonly #remote: RemoteLayers | undefined;
  readonly #lazy: LazySnapshotLayers | undefined;
  /** Active snapshots that containerd applies itself, and why (for the log and stats at Commit). */
  readonly #leftToContainerd = new Map<string, string>();

  constructor(deps: SnapshotterDeps) {
    this.#store = deps.store;
    this.#logger = deps.logger;
    this.#remote = deps.remote;
    this.#lazy = deps.lazy;
  }

  async prepare(key: string, parent: string, labels: Labels): Promise<PrepareResult> {
    const target = labels[TARGET_REF_LABEL];
    if (target) {
      const committed = await this.#prepareRemote(key, parent, labels, target);
      if (committed) return committed;
    } else if (isExtractKey(key)) {
      this.#leaveToContainerd(key, undefined, NO_TARGET);
    }
    const row = this.#store.snapshots.create({ name: key, kind: 'active', parent: parent || null, labels });
    return { mounts: await this.#mountsOrRemove(row) };
  }

  async view(key: string, parent: string, labels: Labels): Promise<ContainerdMount[]> {
    const row = this.#store.snapshots.create({ name: key, kind: 'view', parent: parent || null, labels });
    return this.#mountsOrRemove(row);
  }

  async mounts(key: string): Promise<ContainerdMount[]> {
    const row = this.#get(key);
    if (row.kind === 'committed') {
      throw new HostpullError('SNAPSHOT_NOT_ACTIVE', `snapshot ${JSON.stringify(key)} is committed; only active and view snapshots have mounts`);
    }
    return this.#mounts(row);
  }

  /**
   * containerd applied a layer into active snapshot `key` and commits it as `name`. When the name
   * is a chainID that one known diffID reproduces (the labels' diffID, or any layer the store
   * knows; the bottom layer's chainID is its diffID), the applied tree becomes that store layer —
   * or is dropped if the store has it already — so a later pull of any image reuses it.
   */
  async commit(name: string, key: string, labels: Labels): Promise<void> {
    const active = this.#get(key);
    const merged = { ...active.labels, ...labels };
    const chain = chainIdOfName(name);
    let diffId: Digest | undefined;
    let blob: Digest | undefined;
    if (chain && active.kind === 'active') {
      const known = knownLayers(this.#store);
      const claimed = merged[LAYER_DIFF_ID_ANNOTATION] as Digest | undefined;
      blob = merged[CRI_LAYER_DIGEST_LABEL] as Digest | undefined;
      const byBlob = blob ? this.#store.layers.byBlob(blob)?.diffId : undefined;
      diffId = identifyLayer(name, active.parent, [...(claimed ? [claimed] : []), ...(byBlob ? [byBlob] : []), ...known.keys()]);
      if (diffId) blob ??= known.get(diffId);
    }
    if (diffId) {
      const dir = this.#store.snapshots.dir(active);
      await adoptLayerDir(this.#store, dir.fs, diffId, blob);
      this.#store.snapshots.commit(key, name, merged, diffId);
      // Adopted, or the store had the layer: either way fs/ is no longer this snapshot's content.
      await rm(dir.root, { recursive: true, force: true });
    } else {
      this.#store.snapshots.commit(key, name, merged, null);
    }
    // containerd unmounted the active snapshot before committing it: its lazy lowerdirs are free.
    await this.#lazy?.release(key);
    if (chain) {
      const reason = this.#leftToContainerd.get(key) ?? 'containerd applied it (reason not recorded: prepared before this daemon started)';
      this.#store.snapshotLog.record({ chainId: chain, diffId: diffId ?? null, blobDigest: blob ?? null, outcome: 'applied', bytes: 0, reason });
    }
    this.#leftToContainerd.delete(key);
  }

  /**
   * containerd removes a snapshot after unmounting whatever it mounted from it (a container's
   * rootfs, an applier's or a view's temporary mount): the lazy views its mounts named are
   * released here (see LazySnapshotLayers).
   */
  async remove(key: string): Promise<void> {
    await this.#store.snapshots.remove(key);
    this.#leftToContainerd.delete(key);
    await this.#lazy?.release(key);
  }

  stat(key: string): SnapshotInfo {
    return info(this.#get(key));
  }

  /** Updates labels: `paths` as containerd's field mask ("labels", "labels.<key>"); none = all labels. */
  update(name: string, labels: Labels, paths: readonly string[]): SnapshotInfo {
    const row = this.#get(name);
    let next: Labels = { ...row.labels };
    if (paths.length === 0) next = { ...labels };
    for (const p of paths) {
      if (p === 'labels') next = { ...labels };
      else if (p.startsWith('labels.')) {
        const k = p.slice('labels.'.length);
        if (labels[k] !== undefined) next[k] = labels[k];
        else delete next[k];
      } else {
        throw new HostpullError('SNAPSHOT_INVALID', `cannot update field ${JSON.stringify(p)} of snapshot ${JSON.stringify(name)}: only labels change`);
      }
    }
    return info(this.#store.snapshots.setLabels(name, next));
  }

  list(filters: readonly string[]): SnapshotInfo[] {
    const match = compileFilters(filters);
    return this.#store.snapshots
      .list()
      .filter((row) =>
        match((path) => {
          if (path.length === 1 && path[0] === 'kind') return row.kind;
          if (path.length === 1 && path[0] === 'name') return row.name;
          if (path.length === 1 && path[0] === 'parent') return row.parent ?? '';
          if (path[0] === 'labels' && path.length > 1) return row.labels[path.slice(1).join('.')];
          return undefined;
        }),
      )
      .map(info);
  }

  /** Disk a snapshot's own content uses: the layer it stands for, or its fs/. */
  async usage(key: string): Promise<{ size: number; inodes: number }> {
    const row = this.#get(key);
    const layer = row.diffId ? this.#store.layers.get(row.diffId) : undefined;
    if (layer) return { size: layer.unpackedSize, inodes: layer.entries };
    const fs = this.#store.snapshots.dir(row).fs;
    if (!existsSync(fs)) return { size: 0, inodes: 0 };
    const s = await summarizeLayerDir(fs);
    return { size: s.unpackedSize, inodes: s.entries };
  }

  /** Removes directories under snapshots/ that no row owns (crash leftovers, removals cut short). */
  async cleanup(): Promise<number> {
    const names = await readdir(this.#store.layout.snapshotsDir).catch(() => [] as string[]);
    const doomed = this.#store.snapshots.setAsideUnowned(names);
    for (const d of doomed) await rm(d, { recursive: true, force: true });
    return doomed.length;
  }

  async #prepareRemote(key: string, parent: string, labels: Labels, target: string): Promise<PrepareResult | undefined> {
    const store = this.#store;
    const chain = chainIdOfName(target);
    const leave = (reason: string): undefined => this.#leaveToContainerd(key, target, reason);
    if (!chain) return leave(`the target ${JSON.stringify(target)} is not a chainID`);
    const existing = store.snapshots.get(target);
    if (existing) {
      if (existing.kind === 'committed' && existing.parent === (parent || null)) {
        store.snapshotLog.record({ chainId: chain, diffId: existing.diffId, blobDigest: (labels[CRI_LAYER_DIGEST_LABEL] as Digest | undefined) ?? null, outcome: 'reused', bytes: 0 });
        return { committed: target };
      }
      return leave(`a snapshot named ${target} exists already with another parent (${existing.parent ?? 'none'})`);
    }
    const parentChain = parent ? chainIdOfName(parent) : undefined;
    if (parent && !parentChain) return leave(`the parent ${JSON.stringify(parent)} is not named by a chainID`);
    if (!this.#remote) return leave('remote layers are off in this daemon');
    const r = await this.#remote.ensure({ target: chain, parentChain, labels });
    if (!r.handled) return leave(r.reason);
    try {
      store.snapshots.create({ name: target, kind: 'committed', parent: parent || null, labels: { ...labels, [TARGET_REF_LABEL]: target }, diffId: r.diffId, layerArriving: r.outcome === 'lazy' });
    } catch (err) {
      // Another namespace committed the same chain meanwhile: the same answer, if it is the same chain.
      const raced = isHostpullError(err, 'SNAPSHOT_EXISTS') ? store.snapshots.get(target) : undefined;
      if (!raced || raced.parent !== (parent || null)) return leave(`committing ${target} failed: ${(err as Error).message}`);
    }
    store.snapshotLog.record({ chainId: chain, diffId: r.diffId, blobDigest: r.blobDigest, outcome: r.outcome, bytes: r.bytes });
    this.#logger.debug({ target, diffId: r.diffId, outcome: r.outcome, bytes: r.bytes }, r.outcome === 'lazy' ? 'snapshotter: layer served lazily' : 'snapshotter: layer made present');
    return { committed: target };
  }

  /** Remembers (for Commit's stats) and logs why containerd applies this layer itself. */
  #leaveToContainerd(key: string, target: string | undefined, reason: string): undefined {
    this.#leftToContainerd.set(key, reason);
    this.#logger.info({ key, target, reason }, 'snapshotter: layer not handled remotely, containerd applies it');
    return undefined;
  }

  #get(name: string): SnapshotRow {
    const row = this.#store.snapshots.get(name);
    if (!row) throw new HostpullError('SNAPSHOT_NOT_FOUND', `snapshot ${JSON.stringify(name)} does not exist`);
    return row;
  }

  /**
   * The directory a committed snapshot contributes to the mounts of snapshot `holder`: its
   * layer's; else, while the layer is still arriving lazily, its FUSE view (held for `holder`
   * until containerd removes that snapshot); else what containerd applied into its own fs/. A
   * snapshot whose layer is neither (a daemon restarted before a lazy layer completed) has the
   * layer made present again first: lazily again when the switch is on, else fetched whole.
   */
  async #contentDir(row: SnapshotRow, holder: string): Promise<string> {
    const found = async () => {
      const layer = row.diffId ? this.#store.layers.get(row.diffId) : undefined;
      if (layer) return this.#store.layers.dir(layer);
      const lazyDir = row.diffId ? await this.#lazy?.dirFor(row.diffId, holder) : undefined;
      if (lazyDir) return lazyDir;
      const fs = this.#store.snapshots.dir(row).fs;
      return existsSync(fs) ? fs : undefined;
    };
    let dir = await found();
    if (!dir && row.diffId && row.kind === 'committed') {
      await this.#makePresent(row);
      dir = await found();
    }
    if (dir) return dir;
    throw new HostpullError('SNAPSHOT_CONTENT_MISSING', `snapshot ${JSON.stringify(row.name)}: its layer ${row.diffId ?? '(unknown)'} is not in the store`, {
      hint: 'remove the image from containerd and pull it again',
    });
  }

  /**
   * Makes the layer of a committed snapshot present again from the labels it was prepared with
   * (the image, manifest and layer digests a CRI pull passes). Errors only in the log: the
   * caller reports the content as missing.
   */
  async #makePresent(row: SnapshotRow): Promise<void> {
    const target = chainIdOfName(row.name);
    const parentChain = row.parent ? chainIdOfName(row.parent) : undefined;
    if (!this.#remote || !target || (row.parent && !parentChain)) return;
    try {
      const r = await this.#remote.ensure({ target, parentChain, labels: row.labels });
      if (!r.handled) this.#logger.warn({ snapshot: row.name, diffId: row.diffId, reason: r.reason }, 'snapshotter: the layer of a committed snapshot could not be made present');
    } catch (err) {
      this.#logger.warn({ snapshot: row.name, diffId: row.diffId, err: (err as Error).message }, 'snapshotter: the layer of a committed snapshot could not be made present');
    }
  }

  /**
   * After a restart: the committed snapshots whose layers were still arriving lazily get them
   * back (a new lazy view that completes in the background, or a whole fetch with the switch
   * off), so that they complete without waiting for a container to mount them.
   */
  async resumeArrivingLayers(): Promise<number> {
    const rows = this.#store.snapshots.awaitingLayer();
    const seen = new Set<Digest>();
    for (const row of rows) {
      if (seen.has(row.diffId!)) continue;
      seen.add(row.diffId!);
      await this.#makePresent(row);
    }
    return seen.size;
  }

  /** The mounts of a snapshot just created; if they cannot be made, the snapshot goes again (containerd sees the error). */
  async #mountsOrRemove(row: SnapshotRow): Promise<ContainerdMount[]> {
    try {
      return await this.#mounts(row);
    } catch (err) {
      await this.remove(row.name).catch(() => undefined);
      throw err;
    }
  }

  async #mounts(row: SnapshotRow): Promise<ContainerdMount[]> {
    const lowerdirs: string[] = [];
    // A lazy view named here stays held for this snapshot until it is removed (also when a later ancestor fails).
    for (let p = row.parent; p !== null; ) {
      const ancestor = this.#get(p);
      lowerdirs.push(await this.#contentDir(ancestor, row.name));
      p = ancestor.parent;
    }
    const own = this.#store.snapshots.dir(row);
    if (row.kind === 'active') return snapshotMounts({ lowerdirs, upper: { fs: own.fs, work: own.work } });
    return snapshotMounts({ lowerdirs, emptyDir: own.fs });
  }
}
