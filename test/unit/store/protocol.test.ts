/**
 * The store's concurrency protocol (src/store/protocol.ts): the names every part builds and
 * reads come from one place, and one staleness rule holds for leases everywhere — a lease that
 * others may take over is one GC no longer respects, and not a moment before.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { digestOf } from '../../../src/oci/digest.js';
import { ContentStore } from '../../../src/store/content-store.js';
import {
  blobLeaseKey,
  LEASE_STALE_AFTER_MS,
  leasedBlob,
  numberedDirId,
  parsePartialFileName,
  partialFileName,
  stagingDirName,
  stagingDirOwner,
} from '../../../src/store/protocol.js';
import { useTempDir } from '../../helpers/tmp.js';

const digest = digestOf('protocol');

describe('names', () => {
  it('are read back by the functions that build them', () => {
    expect(leasedBlob(blobLeaseKey(digest))).toBe(digest);
    expect(leasedBlob('other:thing')).toBeUndefined();
    expect(stagingDirOwner(stagingDirName())).toBe(process.pid);
    expect(stagingDirOwner(stagingDirName('gc12'))).toBe(process.pid);
    expect(stagingDirOwner('12')).toBeUndefined();
    expect(numberedDirId('12')).toBe(12);
    expect(numberedDirId('012')).toBeUndefined();
    expect(numberedDirId(stagingDirName())).toBeUndefined();
    expect(parsePartialFileName(partialFileName(digest))).toEqual({ digest, ownerPid: undefined });
    expect(parsePartialFileName(partialFileName(digest, true))).toEqual({ digest, ownerPid: process.pid });
    expect(parsePartialFileName('notes.txt')).toBeUndefined();
  });
});

describe('one lease staleness for takeover and for GC', () => {
  const tmp = useTempDir('store-protocol');
  let store: ContentStore;
  beforeEach(async () => {
    store = await ContentStore.open(await tmp(), { reconcile: false });
  });
  afterEach(() => store.close());

  /** A lease on `digest` held by a live process (our parent) whose last heartbeat was `age` ms ago. */
  function leaseAged(age: number): void {
    const at = Date.now() - age;
    store.db.prepare('INSERT OR REPLACE INTO leases (key, pid, token, acquired_at, heartbeat_at) VALUES (?, ?, ?, ?, ?)').run(blobLeaseKey(digest), process.ppid, 'other', at, at);
  }

  it('a fresh heartbeat holds the blob against GC and against takeover; a stale one holds it against neither', async () => {
    await store.blobs.putBytes(digest, Buffer.from('protocol'), null);
    const lastUsed = store.blobs.get(digest)!.lastUsed;

    leaseAged(LEASE_STALE_AFTER_MS - 5_000);
    expect(store.leases.blobHeld(digest)).toBe(true);
    expect(store.inventory().leased.has(digest)).toBe(true);
    expect(await store.blobs.collect(digest, lastUsed)).toBe(false);
    const waiting = new AbortController();
    setTimeout(() => waiting.abort(), 100);
    await expect(store.leases.forBlob(digest, { done: () => undefined, work: async () => 'mine', signal: waiting.signal, pollMs: 5 })).rejects.toThrow();

    leaseAged(LEASE_STALE_AFTER_MS + 5_000);
    expect(store.leases.blobHeld(digest)).toBe(false);
    expect(store.inventory().leased.has(digest)).toBe(false);
    expect(await store.leases.forBlob(digest, { done: () => undefined, work: async () => 'taken over', pollMs: 5 })).toBe('taken over');
    leaseAged(LEASE_STALE_AFTER_MS + 5_000);
    expect(await store.blobs.collect(digest, lastUsed)).toBe(true);
    expect(store.blobs.has(digest)).toBe(false);
  });

  it('GC leaves a partial download whose lease is held, and removes one whose holder is gone', async () => {
    const path = join(store.layout.ingestDir, partialFileName(digest));
    writeFileSync(path, 'part');
    leaseAged(1_000);
    expect(await store.removeAbandonedPartials({ graceMs: 0, dryRun: false })).toEqual({ removed: 0, bytes: 0 });
    leaseAged(LEASE_STALE_AFTER_MS + 5_000);
    expect(await store.removeAbandonedPartials({ graceMs: 0, dryRun: false })).toEqual({ removed: 1, bytes: 4 });
  });
});
