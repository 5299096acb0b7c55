import { createCipheriv, createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { digestOf, type Digest } from '../oci/index.js';
import type { BenchPackageVersion } from './catalog.js';
import { TAR_END, tarEntry } from './tar.js';

/** A layer blob built in memory: gzip bytes plus both digests. */
export interface BenchBlob {
  /** Digest of the gzip blob. */
  digest: Digest;
  /** Digest of the uncompressed tar (config rootfs.diff_ids). */
  diffId: Digest;
  size: number;
  blob: Buffer;
}

/**
 * Deterministic bytes: AES-256-CTR keystream under a key derived from the label. Alternate 4 KiB
 * blocks are a 256-byte slice repeated, so gzip shrinks the data about 2× like real binaries and
 * jars do; pure random bytes would make the compressed sizes (which decide bytes fetched)
 * unrealistically equal to the payload.
 */
export function fileBytes(label: string, size: number): Buffer {
  const key = createHash('sha256').update(label).digest();
  const cipher = createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
  const out = cipher.update(Buffer.alloc(size));
  for (let off = 4096; off < size; off += 8192) {
    const end = Math.min(size, off + 4096);
    for (let i = off + 256; i < end; i += 256) out.copy(out, i, off, off + Math.min(256, end - i));
  }
  return out;
}

/** `/opt/<dir>` owned by a package version: its code name in lower case. */
export function packageDir(code: string): string {
  return `opt/${code.toLowerCase()}`;
}

/** Files per layer: about one per 256 KiB of payload, 1…6, so layers have several entries. */
function fileCount(bytes: number): number {
  return Math.max(1, Math.min(6, Math.round(bytes / (256 * 1024))));
}

/** Tar entries of one package version (without the end marker). */
export function packageEntries(seed: number, v: BenchPackageVersion): Buffer[] {
  const dir = packageDir(v.code);
  const n = v.files ?? fileCount(v.bytes);
  const each = Math.floor(v.bytes / n);
  const parts: Buffer[] = [tarEntry({ name: 'opt/' }), tarEntry({ name: `${dir}/` }), tarEntry({ name: `${dir}/bin/` }), tarEntry({ name: `${dir}/lib/` })];
  parts.push(tarEntry({ name: `${dir}/bin/${v.package.toLowerCase()}`, data: Buffer.from(`#!/bin/sh\necho ${v.code}\n`), mode: 0o755 }));
  for (let i = 0; i < n; i++) {
    const size = i === n - 1 ? v.bytes - each * (n - 1) : each;
    parts.push(tarEntry({ name: `${dir}/lib/part-${i}.bin`, data: fileBytes(`${seed}:${v.code}:${i}`, size) }));
  }
  return parts;
}

/** Tar entries of the shared base layer. */
export function baseEntries(seed: number, bytes: number): Buffer[] {
  const n = fileCount(bytes);
  const each = Math.floor(bytes / n);
  const parts: Buffer[] = [tarEntry({ name: 'etc/' }), tarEntry({ name: 'etc/os-release', data: Buffer.from('NAME="hostpull bench base"\nID=bench\n') }), tarEntry({ name: 'usr/' }), tarEntry({ name: 'usr/lib/' })];
  for (let i = 0; i < n; i++) {
    const size = i === n - 1 ? bytes - each * (n - 1) : each;
    parts.push(tarEntry({ name: `usr/lib/base-${i}.bin`, data: fileBytes(`${seed}:base:${i}`, size) }));
  }
  return parts;
}

/** gzip level 6 with Node's fixed header (no name, mtime 0): same entries, same digest. */
export function buildBlob(entries: readonly Buffer[]): BenchBlob {
  const tar = Buffer.concat([...entries, TAR_END]);
  const blob = gzipSync(tar, { level: 6 });
  return { digest: digestOf(blob), diffId: digestOf(tar), size: blob.length, blob };
}

/**
 * Baseline (a): every file of the base and of the packages in one layer, as a `RUN install-all`
 * or a squashed image would ship it. The `opt/` directory entry is written once.
 */
export function flattenedBlob(base: readonly Buffer[], packages: ReadonlyArray<readonly Buffer[]>): BenchBlob {
  const opt = tarEntry({ name: 'opt/' });
  const rest = packages.flatMap((entries) => entries.filter((e) => !e.equals(opt)));
  return buildBlob([...base, opt, ...rest]);
}

/**
 * Baseline (b): one Dockerfile step. The `.parent` file holds the chain ID of the layers below,
 * standing in for what makes real stacked layers differ whenever anything below differs (files
 * written over, timestamps, package-manager databases), so the digest changes with the parent.
 */
export function stackedBlob(parentChainId: string, entries: readonly Buffer[]): BenchBlob {
  return buildBlob([tarEntry({ name: '.parent', data: Buffer.from(`${parentChainId}\n`) }), ...entries]);
}

/** OCI chain ID: ChainID(L0) = DiffID(L0); ChainID(L0…n) = sha256(ChainID(L0…n-1) + " " + DiffID(Ln)). */
export function chainId(parent: string | undefined, diffId: Digest): string {
  return parent === undefined ? diffId : `sha256:${createHash('sha256').update(`${parent} ${diffId}`).digest('hex')}`;
}
