import { chmod, mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isHostpullError } from '../../../src/errors.js';
import { digestOf } from '../../../src/oci/digest.js';
import { ContentStore } from '../../../src/store/content-store.js';
import { VerifyingStream } from '../../../src/archive/verifying-stream.js';
import { useTempDir } from '../../helpers/tmp.js';

describe('BlobStore', () => {
  const tmp = useTempDir('store-blobs');
  let store: ContentStore;
  beforeEach(async () => {
    store = await ContentStore.open(await tmp());
  });
  afterEach(() => store.close());

  it('stores bytes, finds them and reads them back', async () => {
    const bytes = Buffer.from('{"schemaVersion":2}');
    const digest = digestOf(bytes);
    expect(store.blobs.has(digest)).toBe(false);
    await store.blobs.putBytes(digest, bytes, 'application/json');
    expect(store.blobs.has(digest)).toBe(true);
    expect(store.blobs.get(digest)).toMatchObject({ digest, size: bytes.length, mediaType: 'application/json' });
    expect(await store.blobs.readBytes(digest)).toEqual(bytes);
    // Verified blobs are read-only on disk and the ingest file is gone.
    expect((await stat(store.blobs.path(digest))).mode & 0o777).toBe(0o444);
    await expect(stat(store.layout.ingestPath(digest))).rejects.toMatchObject({ code: 'ENOENT' });
    // Storing it again is a no-op.
    await store.blobs.putBytes(digest, bytes, 'application/json');
    expect(store.blobs.list()).toHaveLength(1);
  });

  it('two stores on one root putting the same manifest at once both succeed, and leave no ingest file', async () => {
    // What two `hostpull pull` processes do with a shared config: no lease guards putBytes.
    const other = await ContentStore.open(store.layout.root);
    try {
      for (let i = 0; i < 25; i++) {
        const bytes = Buffer.from(JSON.stringify({ schemaVersion: 2, n: i, pad: 'x'.repeat(64 * 1024) }));
        const digest = digestOf(bytes);
        await Promise.all([store.blobs.putBytes(digest, bytes, 'application/json'), other.blobs.putBytes(digest, bytes, 'application/json')]);
        expect(await store.blobs.readBytes(digest)).toEqual(bytes);
      }
      expect(await readdir(store.layout.ingestDir)).toEqual([]);
    } finally {
      other.close();
    }
  });

  it('stores sha512 blobs under their algorithm', async () => {
    const bytes = Buffer.from('sha512 content');
    const digest = digestOf(bytes, 'sha512');
    await store.blobs.putBytes(digest, bytes, null);
    expect(store.blobs.path(digest)).toContain('/blobs/sha512/');
    expect(await store.blobs.readBytes(digest)).toEqual(bytes);
  });

  it('refuses bytes that do not hash to the digest, and stores nothing', async () => {
    const digest = digestOf('the real content');
    const err = await store.blobs.putBytes(digest, Buffer.from('something else'), null).catch((e: unknown) => e);
    expect(isHostpullError(err, 'DIGEST_MISMATCH')).toBe(true);
    expect(store.blobs.has(digest)).toBe(false);
    await expect(stat(store.blobs.path(digest))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('rejects putBytes when the commit fails, instead of reporting success without a row', async () => {
    const bytes = Buffer.from('commit will fail');
    const digest = digestOf(bytes);
    // A file where the fan-out directory should be makes the commit's mkdir fail.
    await mkdir(dirname(dirname(store.blobs.path(digest))), { recursive: true });
    await writeFile(dirname(store.blobs.path(digest)), 'in the way');
    await expect(store.blobs.putBytes(digest, bytes, null)).rejects.toMatchObject({ code: expect.stringMatching(/^E/) });
    expect(store.blobs.has(digest)).toBe(false);
  });

  it('throws STORE_CORRUPT when a stored blob no longer matches its digest', async () => {
    const bytes = Buffer.from('original content');
    const digest = digestOf(bytes);
    await store.blobs.putBytes(digest, bytes, null);
    const path = store.blobs.path(digest);
    await chmod(path, 0o644);
    await writeFile(path, 'tampered content');
    const err = await store.blobs.readBytes(digest).catch((e: unknown) => e);
    expect(isHostpullError(err, 'STORE_CORRUPT')).toBe(true);
    expect((err as Error).message).toContain(digest);
    expect((err as { hint: string }).hint).toMatch(/`hostpull verify --repair`/);
    // Quarantined: the row is gone (the next pull fetches it again), the file moved aside.
    expect(store.blobs.has(digest)).toBe(false);
    await expect(stat(path)).rejects.toMatchObject({ code: 'ENOENT' });
    const [moved] = store.quarantine.list();
    expect(moved).toContain(digest.slice('sha256:'.length, 30));
    expect(await store.quarantine.purge()).toBe(1);
    expect(store.quarantine.list()).toEqual([]);
  });

  it('resumes an ingest from the bytes already on disk and verifies the whole blob', async () => {
    const content = Buffer.from('0123456789'.repeat(1000));
    const digest = digestOf(content);
    const prefix = content.subarray(0, 3333);

    // First attempt: the transfer breaks after the prefix; the writer is destroyed, not ended.
    const first = await store.blobs.openIngest(digest, content.length, 'application/octet-stream', { resume: true });
    expect(first.offset).toBe(0);
    await new Promise<void>((resolve, reject) => first.writer.write(prefix, (err) => (err ? reject(err) : resolve())));
    first.writer.destroy();
    await new Promise((r) => first.writer.once('close', r));
    expect((await readFile(store.layout.ingestPath(digest))).equals(prefix)).toBe(true);

    // Second attempt resumes at the prefix length with a digester already fed with the prefix.
    const second = await store.blobs.openIngest(digest, content.length, 'application/octet-stream', { resume: true });
    expect(second.offset).toBe(prefix.length);
    const verifier = new VerifyingStream({ digest, size: content.length, source: 'test', hash: second.hash, offset: second.offset });
    await pipeline(Readable.from([content.subarray(prefix.length)]), verifier, second.writer);
    expect(verifier.bytes).toBe(content.length);
    expect(store.blobs.get(digest)).toMatchObject({ size: content.length });
    expect((await readFile(store.blobs.path(digest))).equals(content)).toBe(true);
  });

  it('starts over when not resuming, or when the partial file is not shorter than the blob', async () => {
    const content = Buffer.from('abcdefghij');
    const digest = digestOf(content);
    await writeFile(store.layout.ingestPath(digest), 'abc');
    expect((await store.blobs.openIngest(digest, content.length, null, { resume: false })).offset).toBe(0);
    await writeFile(store.layout.ingestPath(digest), 'abcdefghijXYZ');
    const ingest = await store.blobs.openIngest(digest, content.length, null, { resume: true });
    expect(ingest.offset).toBe(0);
    expect((await stat(store.layout.ingestPath(digest))).size).toBe(0);
    ingest.writer.destroy();
  });

  it('discards a partial download', async () => {
    const digest = digestOf('partial');
    await writeFile(store.layout.ingestPath(digest), 'par');
    await store.blobs.discardIngest(digest);
    await expect(stat(store.layout.ingestPath(digest))).rejects.toMatchObject({ code: 'ENOENT' });
    await store.blobs.discardIngest(digest); // already gone: fine
  });
});
