import { randomBytes } from 'node:crypto';
import { digestAlgorithm, digestHex, isDigest, type Digest } from '../oci/index.js';

/**
 * The store's concurrency protocol: how the processes that share one store root (the daemon, CLI
 * verbs working in-process beside it, a `hostpull run` killed at any moment) agree without
 * talking to each other. Everything here is a name, a number or a rule the other files of
 * src/store follow; nothing outside src/store builds these names or reads these tables.
 *
 * Three rules carry it:
 *  1. A row is the truth. A file or directory becomes visible under its final name only inside
 *     the write transaction (BEGIN IMMEDIATE) that inserts its row, and leaves it only inside the
 *     one that deletes the row. Ids are reused once their row is gone, so what is removed is first
 *     renamed out of its numbered name inside that transaction and deleted after it.
 *  2. What is in transit carries its owner's pid in its name (`staging-<pid>-…` directories,
 *     `….partial.<pid>-…` files) or holds a lease row (`blob:<digest>`) with a heartbeat. A live
 *     owner's things are never touched; a dead owner's are cleaned up (reconcile at open, GC).
 *  3. Whatever holds a layer says so in a row that GC re-checks in its deleting transaction:
 *     an image (manifest_layers), a mounted rootfs (mount_layers), a containerd snapshot
 *     (snapshots.diff_id), a pull in flight (the lease of the blob it downloads, and its hold on
 *     every digest of its image until the image is recorded: pull_holds, under a `pull:<token>`
 *     lease row that carries its pid and heartbeat).
 *
 * A blob (compressed content: blobs/<alg>/<hex[0:2]>/<hex>, row in `blobs`):
 *
 *              lease blob:<digest> taken                 verified, fsynced, renamed,
 *   (absent) ────────────────────────▶ downloading ───────────────────────────────▶ stored
 *      ▲        ingest/<alg>-<hex>.partial  │  │      row inserted (one transaction)    │
 *      │        (holder dies: kept, resumed │  │ digest or size wrong:                   │
 *      │         by the next holder)        │  └─▶ partial deleted ─▶ (absent)          │
 *      │                                    │                                          │
 *      └──── GC: no live lease holds it and └── unleased and older than --min-age:      │
 *            it is older than --min-age          GC deletes the partial ─▶ (absent)     │
 *      ▲                                                                               │
 *      └─── GC: no image needs it, unleased, unused since GC read the store ◀──────────┘
 *
 *   A layer blob whose layer is committed is dropped by the holder of its lease, still holding
 *   it (row, then file), unless blobs are kept (--keep-blobs), or an image hostpull pulled lists
 *   it when the snapshotter fetched it: one copy of each layer, the unpacked one. Such a blob is
 *   not fsynced (it lives only until its layer is committed): after a power loss its row may name
 *   a file that lost bytes, which unpacking it detects (blobs.corruptOnDisk → quarantine).
 *   Manifests and configs are small and unleased: each writer has its own
 *   `<alg>-<hex>.partial.<pid>-<rand>`, removed by GC once its owner is dead.
 *
 * An unpacked layer (layers/<id>, row in `layers` keyed by diff_id, never by chainID):
 *
 *   staging-<pid>-<rand> ──extracted, diff_id verified──▶ commit (one transaction): id = max+1,
 *   (owner alive: untouched;                              rename to layers/<id>, row inserted
 *    owner dead: reconcile removes it)                                  │
 *                                                                       ▼
 *   (absent) ◀── rm ── staging-<pid>-gc<id> ◀── GC, in one transaction: layers/<id> + row
 *                                                delete the row if no image, mount record,
 *                                                snapshot or live lease holds it and it was not
 *                                                used since GC read the store; rename the dir
 *
 *   A containerd snapshot's fs/ adopted as a layer (LayerStore.adopt) is containerd's only copy:
 *   an intent row (`layer_adoptions`: snapshot, reserved id, owner pid + start time) is committed
 *   before the same rename-and-insert transaction, which deletes it. An intent whose owner is
 *   dead is settled by reconcile: layers/<id> without a row goes back to the snapshot's fs/.
 *
 * A lease (row in `leases`): taken in a write transaction when free, or when its holder's pid is
 * dead or its heartbeat (every {@link LEASE_HEARTBEAT_MS}) is older than
 * {@link LEASE_STALE_AFTER_MS}; deleted by its holder when the work ends. Waiters poll every
 * {@link LEASE_POLL_MS} for the row the holder produces.
 *
 * A mount record (rows in `mounts`, `mount_layers`): written, after checking every layer row
 * exists, before the overlay is mounted; released after it is unmounted. One with an owner pid
 * (and that process's start time, since pids are reused) is stale once that process is gone.
 *
 * What GC may remove, and when: a blob or layer no image, mount record, snapshot, live lease or
 * pull in flight (its hold) needs, not used within --min-age, and (re-checked in the deleting transaction) not touched
 * since GC read the store; partial downloads no live process holds, older than --min-age. At
 * open, reconcile makes files and rows agree: rows without files go, verified files without rows
 * older than {@link UNCOMMITTED_FILE_GRACE_MS} are adopted, partials older than
 * {@link PARTIAL_MAX_AGE_MS} go, staging directories of dead owners go.
 */

/** A lease holder that has written no heartbeat for this long is presumed hung or dead: others take its lease over, GC ignores it. */
export const LEASE_STALE_AFTER_MS = 30_000;
/** How often a lease holder writes its heartbeat (well within {@link LEASE_STALE_AFTER_MS}). */
export const LEASE_HEARTBEAT_MS = 2_000;
/** How often a waiter looks again while another process holds the lease. */
export const LEASE_POLL_MS = 50;
/** A file in blobs/ this young without a row may be a commit in progress elsewhere (rename, then row): reconcile leaves it. */
export const UNCOMMITTED_FILE_GRACE_MS = 60_000;
/** Partial downloads untouched this long are removed when a store opens (GC removes unheld ones sooner). */
export const PARTIAL_MAX_AGE_MS = 24 * 3600_000;

const BLOB_LEASE_PREFIX = 'blob:';

/** The lease a process holds while it downloads (and unpacks) the blob `digest`. */
export function blobLeaseKey(digest: Digest): string {
  return `${BLOB_LEASE_PREFIX}${digest}`;
}

/** The blob a lease key is for, or undefined for another kind of lease. */
export function leasedBlob(key: string): Digest | undefined {
  const digest = key.startsWith(BLOB_LEASE_PREFIX) ? key.slice(BLOB_LEASE_PREFIX.length) : undefined;
  return digest !== undefined && isDigest(digest) ? digest : undefined;
}

/**
 * SQL that is true while a blob's lease is held with a fresh heartbeat: bind the digest, then
 * `Date.now() - LEASE_STALE_AFTER_MS`. For GC's deleting statements, which must see a lease
 * taken after GC read the store.
 */
export const BLOB_LEASE_HELD_SQL = `EXISTS (SELECT 1 FROM leases WHERE key = '${BLOB_LEASE_PREFIX}' || ? AND heartbeat_at > ?)`;

/** Lease rows of pulls in flight (pull-holds.ts): `pull:<token>`; no other process takes them over. */
export const PULL_LEASE_PREFIX = 'pull:';

/**
 * SQL that is true while a live pull holds one of the digests in `columns` (a list of column
 * names of the row being deleted): bind `Date.now() - LEASE_STALE_AFTER_MS`. For GC's deleting
 * statements, which must see a hold taken after GC read the store.
 */
export function pullHeldSql(columns: string): string {
  return `EXISTS (SELECT 1 FROM pull_holds h JOIN leases l ON l.key = h.lease WHERE h.digest IN (${columns}) AND l.heartbeat_at > ?)`;
}

const STAGING = /^staging-(\d+)-/;

/** A name under layers/ or snapshots/ for a directory this process builds or tears down: `staging-<pid>-<tag>`. */
export function stagingDirName(tag: string = randomBytes(6).toString('hex')): string {
  return `staging-${process.pid}-${tag}`;
}

/** The pid that owns a staging directory, or undefined when `name` is not one. */
export function stagingDirOwner(name: string): number | undefined {
  const m = STAGING.exec(name);
  return m ? Number(m[1]) : undefined;
}

/** The id of layers/<id> or snapshots/<id>, or undefined for any other name there. */
export function numberedDirId(name: string): number | undefined {
  return /^[1-9][0-9]*$/.test(name) ? Number(name) : undefined;
}

/**
 * The name of a partial download under ingest/: `<alg>-<hex>.partial`, shared by the holders of
 * the blob's lease one after another (resumable), or, with `ownFile`, `….partial.<pid>-<rand>`,
 * written by one process alone (manifests and configs, which no lease guards).
 */
export function partialFileName(digest: Digest, ownFile = false): string {
  const shared = `${digestAlgorithm(digest)}-${digestHex(digest)}.partial`;
  return ownFile ? `${shared}.${process.pid}-${randomBytes(4).toString('hex')}` : shared;
}

/** What a name under ingest/ is: the blob and, for a file of one process's own, its pid. */
export function parsePartialFileName(name: string): { digest: Digest; ownerPid: number | undefined } | undefined {
  const m = /^(sha256|sha512)-([a-f0-9]+)\.partial(?:\.(\d+)-[a-f0-9]+)?$/.exec(name);
  const digest = m ? `${m[1]}:${m[2]}` : undefined;
  if (!m || digest === undefined || !isDigest(digest)) return undefined;
  return { digest, ownerPid: m[3] === undefined ? undefined : Number(m[3]) };
}
