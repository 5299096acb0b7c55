import { createHash } from 'node:crypto';
import { lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import { treeChecksum } from '../../../src/archive/index.js';
import { applyLayer, type ApplyOptions, type ApplyResult } from '../../../src/unpack/index.js';

/** How a test applies a layer: `applyLayer` itself, or an implementation with the same contract. */
export type Applier = (source: Readable, options: ApplyOptions) => Promise<ApplyResult>;

/**
 * The worker entry as built (npx tsc): a worker thread runs plain JavaScript, so the workers of a
 * test run dist/unpack/apply-worker.js, compiled from the same source as what the test imports.
 */
export const BUILT_APPLY_WORKER = fileURLToPath(new URL('../../../dist/unpack/apply-worker.js', import.meta.url));

/**
 * A temp dir holding an empty layer dir and a sentinel tree next to it (`outside/`): every
 * malicious-layer test proves the sentinel is byte-identical and nothing new appeared outside the
 * layer after the attempt.
 */
export interface Sandbox {
  dir: string;
  layer: string;
  outside: string;
  /** Listing of everything in the sandbox except the layer dir (type, mode, size, content hash, link). */
  snapshot(): string[];
  apply(tar: Buffer, opts?: Partial<ApplyOptions>): Promise<ApplyResult>;
  cleanup(): void;
}

export function makeSandbox(apply: Applier = applyLayer): Sandbox {
  const dir = mkdtempSync(join(tmpdir(), 'hp-unpack-'));
  const layer = join(dir, 'layer');
  const outside = join(dir, 'outside');
  mkdirSync(layer);
  mkdirSync(join(outside, 'sub'), { recursive: true });
  writeFileSync(join(outside, 'secret.txt'), 'do not touch\n', { mode: 0o600 });
  writeFileSync(join(outside, 'sub', 'passwd'), 'root:x:0:0::/root:/bin/sh\n', { mode: 0o644 });
  symlinkSync('secret.txt', join(outside, 'link-to-secret'));
  return {
    dir,
    layer,
    outside,
    snapshot: () => walk(dir, '', (rel) => rel === 'layer'),
    // A fresh empty layer dir per attempt: after a refusal the caller discards the directory.
    // Every layer applied is also checked to have the tree checksum a walk of it finds: the
    // applier computes it from what it wrote, which must be what is on the disk.
    apply: async (tar, opts = {}) => {
      rmSync(layer, { recursive: true, force: true });
      mkdirSync(layer);
      const result = await apply(Readable.from([tar]), { compression: 'none', target: layer, ...opts });
      expect(result.treeChecksum, 'the tree checksum recorded at unpack against a walk of the layer').toBe(treeChecksum(layer));
      return result;
    },
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

function walk(root: string, rel: string, skip: (rel: string) => boolean): string[] {
  const out: string[] = [];
  for (const name of readdirSync(join(root, rel)).sort()) {
    const r = rel === '' ? name : `${rel}/${name}`;
    if (skip(r)) continue;
    const abs = join(root, r);
    const st = lstatSync(abs);
    let extra = '';
    if (st.isFile()) extra = createHash('sha256').update(readFileSync(abs)).digest('hex');
    else if (st.isSymbolicLink()) extra = `-> ${readlinkSync(abs)}`;
    out.push(`${r} ${st.mode.toString(8)} ${st.uid}:${st.gid} ${st.size} ${st.mtimeMs} ${extra}`);
    if (st.isDirectory()) out.push(...walk(root, r, skip));
  }
  return out;
}

/** Asserts that `run` rejects with HostpullError `code` and that the sandbox outside the layer is unchanged. */
export async function expectRefused(sb: Sandbox, run: () => Promise<unknown>, code: string, messagePart?: string | RegExp): Promise<void> {
  const before = sb.snapshot();
  const err = await run().then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, 'expected the layer to be refused').toBeDefined();
  expect(err).toMatchObject({ name: 'HostpullError', code });
  const message = (err as Error).message;
  expect(message).toContain(sb.layer);
  if (messagePart !== undefined) expect(message).toMatch(messagePart);
  expect(sb.snapshot()).toEqual(before);
}

export function gzip(buf: Buffer): Buffer {
  return gzipSync(buf);
}
