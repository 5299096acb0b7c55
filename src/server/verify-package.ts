import { spawn } from 'node:child_process';
import { createGunzip } from 'node:zlib';
import { Duplex, PassThrough, Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Parser, type ReadEntry } from 'tar';
import { HostpullError } from '../errors.js';
import { createDigester, digestFromHash, layerCompression, type LayerCompression } from '../oci/index.js';
import type { CatalogEntry } from './catalog-entry.js';
import { readUpstreamImage } from './upstream-image.js';
import type { Upstream } from './upstream.js';

/** Normalises a tar entry name; returns null for names that try to climb out (`..`) or contain NUL. */
export function normaliseEntryName(name: string): string | null {
  if (name.includes('\0')) return null;
  const parts: string[] = [];
  for (const p of name.split('/')) {
    if (p === '' || p === '.') continue;
    if (p === '..') return null;
    parts.push(p);
  }
  return parts.join('/');
}

/**
 * Whether an entry may appear in a layer that owns `prefix`: the prefix and everything below it,
 * plus the directories leading to it (`opt/` for /opt/jdk-11.0) so the layer can create them.
 */
export function entryAllowed(name: string, type: string, prefix: string, linkpath?: string): boolean {
  const p = normaliseEntryName(prefix);
  const n = normaliseEntryName(name);
  if (p === null || n === null) return false;
  const inside = (x: string) => x === p || x.startsWith(`${p}/`);
  if (type === 'Link') {
    const l = normaliseEntryName(linkpath ?? '');
    if (l === null || !inside(l)) return false;
  }
  if (inside(n)) return true;
  return type === 'Directory' && (n === '' || p.startsWith(`${n}/`));
}

/** Node 20's zlib has no zstd, so zstd layers go through the zstd binary. */
function decompressor(compression: LayerCompression): Duplex {
  if (compression === 'gzip') return createGunzip();
  if (compression === 'none') return new PassThrough();
  const child = spawn('zstd', ['-d', '-c', '-q'], { stdio: ['pipe', 'pipe', 'ignore'] });
  const duplex = Duplex.from({ writable: child.stdin, readable: child.stdout });
  child.on('error', (err) => duplex.destroy(err));
  child.on('exit', (code) => {
    if (code !== 0) duplex.destroy(new HostpullError('LAYER_INVALID', `zstd exited with ${code}`));
  });
  return duplex;
}

/**
 * Checks a package image before it enters the catalog: exactly one layer, every entry under the
 * declared prefix, and the layer's uncompressed digest equal to the config's diff_id. The layer is
 * streamed through a tar parser and never extracted. Throws PACKAGE_REFUSED saying why.
 */
export async function verifyPackage(upstream: Upstream, code: string, entry: CatalogEntry, signal?: AbortSignal): Promise<void> {
  const refuse = (why: string, details?: Record<string, unknown>) =>
    new HostpullError('PACKAGE_REFUSED', `${code} (${entry.image}): ${why}`, { details: { codeName: code, ...details } });
  const image = await readUpstreamImage(upstream, entry.image, undefined, signal);
  if (!image) throw refuse(`image not found in ${upstream.location}`);
  if (image.manifest.layers.length !== 1) throw refuse(`has ${image.manifest.layers.length} layers; a package image has exactly one`);
  const layer = image.manifest.layers[0]!;
  let compression: LayerCompression;
  try {
    compression = layerCompression(layer.mediaType);
  } catch (err) {
    throw refuse((err as Error).message);
  }
  const blob = await upstream.getBlob(image.repo, layer.digest, undefined, signal);
  if (!blob) throw refuse(`layer ${layer.digest} is missing`);

  const outside: string[] = [];
  const diffHash = createDigester();
  const hashTap = new Transform({
    transform(chunk: Buffer, _e, cb) {
      diffHash.update(chunk);
      cb(null, chunk);
    },
  });
  const parser = new Parser({ strict: true });
  parser.on('entry', (e: ReadEntry) => {
    if (outside.length < 10 && !entryAllowed(e.path, e.type, entry.prefix, e.linkpath)) outside.push(e.path);
    e.resume();
  });
  try {
    await pipeline(blob.stream as Readable, decompressor(compression), hashTap, parser as unknown as NodeJS.WritableStream, { signal });
  } catch (err) {
    throw refuse(`layer is not a readable tar archive: ${(err as Error).message}`);
  }
  if (outside.length > 0) {
    throw refuse(`layer has entries outside ${entry.prefix}: ${outside.join(', ')}`, { outside });
  }
  const diffId = digestFromHash(diffHash, 'sha256');
  if (diffId !== image.config.rootfs.diff_ids[0]) {
    throw refuse(`uncompressed layer digest ${diffId} differs from the config's diff_id ${image.config.rootfs.diff_ids[0]}`);
  }
}
