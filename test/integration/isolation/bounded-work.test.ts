/**
 * Bounded work for any input (issue 10): a decompression bomb, a PAX-header flood and a manifest
 * request for a large blob's digest, each through the real parts (docker-registry, the built CLI,
 * `hostpull serve` as its own process), with the peak RSS and the bytes written or read measured
 * in the process that did the work, next to a baseline taken in the same run.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { gunzipSync, gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServeProcess } from '../../../src/demo/serve-process.js';
import { CLI_ENTRY, REPO_ROOT, runCli, type CliResult } from '../../helpers/cli.js';
import { baseFiles, buildLayer, pushImage, type BuiltLayer } from '../../helpers/fixtures.js';
import { startRegistry, type TestRegistry } from '../../helpers/registry.js';
import { metaEntry, paxBody, tarEnd, tarEntry } from '../../helpers/tar-writer.js';
import { makeTempDir, removeTempDir } from '../../helpers/tmp.js';
import { digestOf, MediaType } from '../../../src/oci/index.js';

const MiB = 1024 * 1024;
const HOOK = pathToFileURL(join(REPO_ROOT, 'test', 'helpers', 'usage-hook.mjs')).href;

interface Usage {
  maxRssBytes: number;
  /** Bytes passed to write(2) and friends (files, pipes, sockets). */
  wchar: number;
  /** Bytes the process caused to be written to storage. */
  write_bytes: number;
  rchar: number;
}

let registry: TestRegistry;
let work: string;
let base: BuiltLayer;
/** Figures of this run, printed at the end for the record. */
const figures: Record<string, Usage | Record<string, number>> = {};

/** Runs the CLI as root with the usage hook; returns its result and what it used. */
async function measured(name: string, args: string[]): Promise<{ r: CliResult; usage: Usage }> {
  const file = join(work, `${name}.usage.json`);
  const r = await runCli(args, {
    timeoutMs: 180_000,
    env: { NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import ${HOOK}`.trim(), HOSTPULL_TEST_USAGE_FILE: file },
  });
  const usage = JSON.parse(await readFile(file, 'utf8')) as Usage;
  figures[name] = usage;
  return { r, usage };
}

/**
 * A gzip layer made of gzip members (concatenated members are one valid gzip stream): cheap to
 * build however large it inflates. The diff_id is the digest of what it inflates to.
 */
function fromMembers(members: Buffer[]): BuiltLayer {
  const blob = Buffer.concat(members);
  const hash = createHash('sha256');
  for (const m of members) hash.update(gunzipSync(m));
  const diffId = `sha256:${hash.digest('hex')}` as BuiltLayer['diffId'];
  return { tar: Buffer.alloc(0), blob, digest: digestOf(blob), diffId, size: blob.length, mediaType: MediaType.OciLayerGzip };
}

beforeAll(async () => {
  registry = await startRegistry();
  work = await makeTempDir('bounds');
  base = buildLayer(baseFiles());
  await pushImage(registry.url, 'bounds/baseline', 'v1', [base], { cmd: ['/bin/sh'] });
});

afterAll(async () => {
  await registry?.stop();
  if (work) await removeTempDir(work);
  process.stdout.write(`bounded-work figures: ${JSON.stringify(figures)}\n`);
});

describe('bounded work', () => {
  it('a baseline pull (same machine, same run) for comparison', async () => {
    const { r, usage } = await measured('baseline', ['--root', join(work, 'baseline'), 'pull', '--no-daemon', `${registry.host}/bounds/baseline:v1`]);
    expect(r.code, r.stderr).toBe(0);
    expect(usage.maxRssBytes).toBeGreaterThan(0);
  });

  it('a decompression bomb (1 MiB of gzip inflating to 1 GiB) stops at the expansion bound', async () => {
    // One file of 1 GiB of zeros: a tar header, then 1024 gzip members of 1 MiB of zeros each.
    const zeros = Buffer.alloc(MiB);
    const header = tarEntry({ name: 'zeros', type: 'file', size: 1024 * MiB }).subarray(0, 512);
    const bomb = buildBomb(header, zeros, 1024);
    expect(bomb.size).toBeLessThan(1.2 * MiB);
    await pushImage(registry.url, 'bounds/bomb', 'v1', [base, bomb], { cmd: ['/bin/sh'] });

    const root = join(work, 'bomb');
    const { r, usage } = await measured('bomb', ['--root', root, 'pull', '--no-daemon', `${registry.host}/bounds/bomb:v1`]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/uncompressed stream exceeds \d+ bytes: more than 100× the \d+-byte compressed layer/);
    // The bound: 100 × ~1.05 MiB + 64 MiB ≈ 170 MiB of tar, not 1 GiB; everything written stays under it.
    const bound = 100 * bomb.size + 64 * MiB;
    expect(usage.wchar).toBeLessThan(bound + 32 * MiB);
    expect(usage.wchar).toBeLessThan(1024 * MiB * 0.25);
    expect(usage.maxRssBytes).toBeLessThan(figures.baseline!.maxRssBytes! + 150 * MiB);
  });

  it('free space minus the reserve bounds an unpack (a small tmpfs store)', async () => {
    const root = join(work, 'tmpfs-store');
    await mkdir(root);
    mountTmpfs(root, '48m');
    // 40 MiB of zeros in a tiny gzip: fits the expansion bound, not 48 MiB minus a 16 MiB reserve.
    const big = buildBomb(tarEntry({ name: 'big', type: 'file', size: 40 * MiB }).subarray(0, 512), Buffer.alloc(MiB), 40);
    await pushImage(registry.url, 'bounds/big', 'v1', [base, big], { cmd: ['/bin/sh'] });
    const { r, usage } = await measured('disk-reserve', ['--root', root, '--disk-reserve', '16M', 'pull', '--no-daemon', `${registry.host}/bounds/big:v1`]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/kept in reserve \(no space left on the device\)/);
    expect(r.stderr).toMatch(/hint: the filesystem of the store is full/);
    expect(usage.wchar).toBeLessThan(40 * MiB);
  });

  it('a PAX-header flood: global headers are refused past their bound; per-entry headers are parsed in bounded memory', async () => {
    // Under 1 MiB of gzip: 40 global headers of 8 MiB each (8 distinct keywords of 1 MiB), each
    // followed by an entry. Kept for every following entry without a bound, that was 320 MiB of
    // records held (and copied) by the reader.
    const members: Buffer[] = [gzipSync(tarEntry({ name: 'flood/', type: 'dir' }))];
    for (let g = 0; g < 40; g++) {
      const records = Array.from({ length: 8 }, (_, i) => [`x.g${g}.k${i}`, 'v'.repeat(MiB)] as [string, string]);
      members.push(gzipSync(Buffer.concat([metaEntry('g', paxBody(records)), tarEntry({ name: `flood/f${g}`, type: 'file' }, 'x')]), { level: 9 }));
    }
    members.push(gzipSync(tarEnd()));
    const globalFlood = fromMembers(members);
    expect(globalFlood.size).toBeLessThan(MiB);
    await pushImage(registry.url, 'bounds/pax-global', 'v1', [base, globalFlood], { cmd: ['/bin/sh'] });
    const g = await measured('pax-global', ['--root', join(work, 'pax-global'), 'pull', '--no-daemon', `${registry.host}/bounds/pax-global:v1`]);
    expect(g.r.code).toBe(1);
    expect(g.r.stderr).toMatch(/g header of \d+ bytes exceeds 65536/);
    expect(g.usage.maxRssBytes).toBeLessThan(figures.baseline!.maxRssBytes! + 100 * MiB);

    // 100 entries, each after a PAX header of ~1 MiB (just under the per-header bound) of ignored
    // keywords: 100 MiB of headers; each one is dropped once its entry is read.
    const header = metaEntry('x', paxBody(Array.from({ length: 990 }, (_, i) => [`x.k${i}`, 'v'.repeat(1000)] as [string, string])));
    const member = gzipSync(Buffer.concat([header, tarEntry({ name: 'flood/f', type: 'file' }, 'x')]), { level: 9 });
    const perEntry = fromMembers([gzipSync(tarEntry({ name: 'flood/', type: 'dir' })), ...Array.from({ length: 100 }, () => member), gzipSync(tarEnd())]);
    await pushImage(registry.url, 'bounds/pax-local', 'v1', [base, perEntry], { cmd: ['/bin/sh'] });
    const l = await measured('pax-local', ['--root', join(work, 'pax-local'), '--max-expansion-ratio', '100000', 'pull', '--no-daemon', `${registry.host}/bounds/pax-local:v1`]);
    expect(l.r.code, l.r.stderr).toBe(0);
    expect(l.usage.maxRssBytes).toBeLessThan(figures.baseline!.maxRssBytes! + 100 * MiB);
  });

  it('a manifest request by a large blob\'s digest reads no more than the manifest limit', async () => {
    const layout = join(work, 'layout');
    const serverRoot = join(work, 'server');
    // A 256 MiB blob in the layout, under its real digest.
    const big = Buffer.alloc(256 * MiB, 7);
    const hex = createHash('sha256').update(big).digest('hex');
    await mkdir(join(layout, 'blobs', 'sha256'), { recursive: true });
    await writeFile(join(layout, 'blobs', 'sha256', hex), big);
    const server = await startServeProcess({ entry: CLI_ENTRY, args: ['--root', serverRoot, 'serve', '--listen', '127.0.0.1:0', '--layout', layout], logFile: join(work, 'serve.log') });
    try {
      const url = server.url;
      const before = procFigures(server.pid);
      const res = await fetch(`${url}/v2/pkg/big/manifests/sha256:${hex}`);
      expect(res.status).toBe(404);
      await res.arrayBuffer();
      const after = procFigures(server.pid);
      figures['manifest-by-blob-digest'] = { rssPeakBefore: before.hwm, rssPeakAfter: after.hwm, bytesRead: after.rchar - before.rchar };
      expect(after.rchar - before.rchar).toBeLessThan(4 * MiB);
      expect(after.hwm - before.hwm).toBeLessThan(16 * MiB);
    } finally {
      await server.stop();
    }
  });
});

/** A tar of one file: its header, `count` copies of `chunk` as data, padding and the end marker, as gzip members. */
function buildBomb(header: Buffer, chunk: Buffer, count: number): BuiltLayer {
  const member = gzipSync(chunk, { level: 9 });
  return fromMembers([gzipSync(header), ...Array.from({ length: count }, () => member), gzipSync(tarEnd())]);
}

function mountTmpfs(dir: string, size: string): void {
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0700`, 'hostpull-test-bounds', dir], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`mount tmpfs on ${dir}: ${r.stderr}`);
}

/** Peak RSS (VmHWM) and bytes read (rchar) of a running process. */
function procFigures(pid: number): { hwm: number; rchar: number } {
  const hwm = Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]) * 1024;
  const rchar = Number(/rchar: (\d+)/.exec(readFileSync(`/proc/${pid}/io`, 'utf8'))?.[1]);
  return { hwm, rchar };
}
