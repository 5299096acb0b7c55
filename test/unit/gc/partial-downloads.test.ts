/**
 * gc and partial downloads, on a real store: a partial that no live process holds goes once it is
 * older than --min-age; one whose lease holder (or writer, for a per-process file) lives stays.
 */
import { spawn } from 'node:child_process';
import { utimesSync, writeFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { collectGarbage } from '../../../src/gc/collect-garbage.js';
import type { Digest } from '../../../src/oci/digest.js';
import { ContentStore } from '../../../src/store/content-store.js';
import { makeTempDir, removeTempDir } from '../../helpers/tmp.js';

const digest = (c: string) => `sha256:${c.repeat(64)}` as Digest;
let dir: string;
let store: ContentStore;

beforeEach(async () => {
  dir = await makeTempDir('gc-partials');
  store = await ContentStore.open(join(dir, 'root'));
});

afterEach(async () => {
  store.close();
  await removeTempDir(dir);
});

/** A partial file of `bytes`, last written `ageMs` ago. */
function partial(name: string, bytes: number, ageMs: number): string {
  const path = join(store.layout.ingestDir, name);
  writeFileSync(path, Buffer.alloc(bytes));
  const t = (Date.now() - ageMs) / 1000;
  utimesSync(path, t, t);
  return name;
}

/** A process that is certainly dead: one we started and waited for. */
async function deadPid(): Promise<number> {
  const child = spawn('true');
  await new Promise((r) => child.once('exit', r));
  return child.pid!;
}

function lease(key: string, pid: number): void {
  store.db.prepare('INSERT INTO leases (key, pid, token, acquired_at, heartbeat_at) VALUES (?, ?, ?, ?, ?)').run(key, pid, 'test', Date.now(), Date.now());
}

describe('gc removes partial downloads', () => {
  it('that no live process holds, once older than the min-age', async () => {
    const old = 3_600_000;
    const dead = await deadPid();
    const orphan = partial(`sha256-${'a'.repeat(64)}.partial`, 1000, old);
    const heldLive = partial(`sha256-${'b'.repeat(64)}.partial`, 2000, old);
    lease(`blob:${digest('b')}`, process.pid);
    const heldDead = partial(`sha256-${'c'.repeat(64)}.partial`, 3000, old);
    lease(`blob:${digest('c')}`, dead);
    const fresh = partial(`sha256-${'d'.repeat(64)}.partial`, 4000, 1000);
    const ownLive = partial(`sha256-${'e'.repeat(64)}.partial.${process.pid}-0a0b0c0d`, 500, old);
    const ownDead = partial(`sha256-${'f'.repeat(64)}.partial.${dead}-0a0b0c0d`, 600, old);
    const stranger = partial('notes.txt', 10, old);

    const dry = await collectGarbage(store, { graceMs: 60_000, dryRun: true });
    expect(dry).toMatchObject({ partialsRemoved: 3, partialBytesFreed: 1000 + 3000 + 600 });
    expect(readdirSync(store.layout.ingestDir)).toHaveLength(7);

    const r = await collectGarbage(store, { graceMs: 60_000 });
    expect(r).toMatchObject({ partialsRemoved: 3, partialBytesFreed: 1000 + 3000 + 600 });
    expect(readdirSync(store.layout.ingestDir).sort()).toEqual([heldLive, fresh, ownLive, stranger].sort());
    expect([orphan, heldDead, ownDead].some((n) => readdirSync(store.layout.ingestDir).includes(n))).toBe(false);

    // --min-age 0 takes the fresh one too; what a live process holds still stays.
    const all = await collectGarbage(store, { graceMs: 0 });
    expect(all).toMatchObject({ partialsRemoved: 1, partialBytesFreed: 4000 });
    expect(readdirSync(store.layout.ingestDir).sort()).toEqual([heldLive, ownLive, stranger].sort());
  });
});
