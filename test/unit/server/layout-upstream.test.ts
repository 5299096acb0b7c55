import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isHostpullError } from '../../../src/errors.js';
import { digestOf, MediaType } from '../../../src/oci/index.js';
import { BLOB_READ_BYTES, LayoutUpstream } from '../../../src/server/layout-upstream.js';

async function text(stream: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString();
}

describe('LayoutUpstream', () => {
  let dir: string;
  let up: LayoutUpstream;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'layout-test-'));
    up = new LayoutUpstream({ dir });
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('stores blobs by digest and serves ranges', async () => {
    const data = Buffer.from('hello layout');
    const d = digestOf(data);
    await up.putBlob('pkg/a', d, data.length, () => Readable.from([data.subarray(0, 3), data.subarray(3)]));
    expect(await up.blobSize('pkg/a', d)).toBe(data.length);
    expect(await text((await up.getBlob('pkg/a', d))!.stream)).toBe('hello layout');
    expect(await text((await up.getBlob('pkg/a', d, { start: 6, end: 8 }))!.stream)).toBe('lay');
    expect(await up.getBlob('pkg/a', digestOf('nope'))).toBeNull();
    expect((await readFile(join(dir, 'blobs', 'sha256', d.slice(7)))).equals(data)).toBe(true);
  });

  it('serves a blob larger than one read, whole and in ranges across the reads, byte for byte', async () => {
    const data = randomBytes(2 * BLOB_READ_BYTES + 12_345);
    const d = digestOf(data);
    await up.putBlob('pkg/big', d, data.length, data);
    const bytes = async (range?: { start: number; end: number }) => {
      const read = (await up.getBlob('pkg/big', d, range))!;
      const chunks: Buffer[] = [];
      for await (const c of read.stream) chunks.push(c as Buffer);
      return Buffer.concat(chunks);
    };
    expect((await bytes()).equals(data)).toBe(true);
    for (const [start, end] of [
      [BLOB_READ_BYTES - 3, BLOB_READ_BYTES + 4],
      [1, 2 * BLOB_READ_BYTES],
      [2 * BLOB_READ_BYTES - 1, data.length - 1],
    ] as const) {
      expect((await bytes({ start, end })).equals(data.subarray(start, end + 1)), `${start}-${end}`).toBe(true);
    }
  });

  it('refuses a blob whose bytes do not match its digest and leaves nothing behind', async () => {
    const d = digestOf('other');
    await expect(up.putBlob('pkg/a', d, 5, Buffer.from('wrong'))).rejects.toSatisfy((e: unknown) => isHostpullError(e, 'DIGEST_INVALID'));
    expect(await up.blobSize('pkg/a', d)).toBeNull();
  });

  it('tags manifests as repo:tag in index.json, retags, and lists tags per repository', async () => {
    const m1 = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciManifest, config: { mediaType: MediaType.OciConfig, digest: digestOf('c'), size: 1 }, layers: [] }));
    const m2 = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciManifest, config: { mediaType: MediaType.OciConfig, digest: digestOf('d'), size: 1 }, layers: [] }));
    const d1 = await up.putManifest('pkg/jdk', '11.0', m1, MediaType.OciManifest);
    await up.putManifest('pkg/jdk', '17.0', m1, MediaType.OciManifest);
    await up.putManifest('pkg/mvn', '3.8', m2, MediaType.OciManifest);
    expect(d1).toBe(digestOf(m1));
    expect((await up.getManifest('pkg/jdk', '11.0'))?.bytes.equals(m1)).toBe(true);
    expect((await up.getManifest('pkg/other', d1))?.digest).toBe(d1);
    expect(await up.getManifest('pkg/mvn', '11.0')).toBeNull();
    const d2 = await up.putManifest('pkg/jdk', '11.0', m2, MediaType.OciManifest);
    expect((await up.getManifest('pkg/jdk', '11.0'))?.digest).toBe(d2);
    expect(await up.listTags('pkg/jdk')).toEqual(['11.0', '17.0']);
    expect(await up.listTags('pkg/none')).toBeNull();
    const index = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as { manifests: Array<{ annotations: Record<string, string> }> };
    expect(index.manifests.map((m) => m.annotations['org.opencontainers.image.ref.name']).sort()).toEqual(['pkg/jdk:11.0', 'pkg/jdk:17.0', 'pkg/mvn:3.8']);
    expect(JSON.parse(await readFile(join(dir, 'oci-layout'), 'utf8'))).toEqual({ imageLayoutVersion: '1.0.0' });
  });

  it('a manifest pushed untagged, then tagged (its referrers attached between), has one entry: the tagged one', async () => {
    const m = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciManifest, config: { mediaType: MediaType.OciConfig, digest: digestOf('e'), size: 1 }, layers: [] }));
    const d = await up.putManifest('pkg/go', undefined, m, MediaType.OciManifest);
    await up.putManifest('pkg/go', '1.19', m, MediaType.OciManifest);
    const index = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string; annotations: Record<string, string> }> };
    expect(index.manifests.filter((e) => e.digest === d).map((e) => e.annotations)).toEqual([{ 'org.opencontainers.image.ref.name': 'pkg/go:1.19' }]);
    expect(await up.listTags('pkg/go')).toEqual(['1.19']);
  });

  it('keeps every tag when many writers update index.json at once', async () => {
    const other = new LayoutUpstream({ dir });
    const writes = Array.from({ length: 20 }, (_, i) => {
      const m = Buffer.from(JSON.stringify({ schemaVersion: 2, config: { mediaType: MediaType.OciConfig, digest: digestOf(String(i)), size: 1 }, layers: [] }));
      return (i % 2 ? up : other).putManifest('pkg/many', `t${String(i).padStart(2, '0')}`, m, MediaType.OciManifest);
    });
    await Promise.all(writes);
    expect(await up.listTags('pkg/many')).toHaveLength(20);
  });
});
