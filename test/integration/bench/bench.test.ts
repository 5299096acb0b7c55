import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { runBench, type BenchResult } from '../../../src/bench/run.js';
import { registerBenchCommand } from '../../../src/cli/commands/bench.js';

let tmp: string;

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'hostpull-bench-test-'));
});

afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

/** Runs `hostpull bench …` in-process and returns what it printed on stdout. */
async function cli(args: string[]): Promise<string> {
  const program = new Command('hostpull').exitOverride();
  registerBenchCommand(program);
  let out = '';
  const spy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    out += String(chunk);
    return true;
  });
  const before = process.exitCode;
  try {
    await program.parseAsync(['node', 'hostpull', 'bench', ...args]);
  } finally {
    spy.mockRestore();
  }
  expect(process.exitCode ?? 0).toBe(before ?? 0);
  return out;
}

describe('hostpull bench', () => {
  it('replays a synthetic workload over 2 nodes: byte counts agree with the registry, hostpull fetches less than both baselines', async () => {
    const report = join(tmp, 'report.html');
    const r = JSON.parse(await cli(['--json', '--packages', '5', '--requests', '16', '--seed', '4', '--nodes', '2', '--tmp-dir', tmp, '--report', report])) as BenchResult;
    const { hostpull, flattened, stacked } = r.approaches;
    expect(flattened && stacked).toBeTruthy();
    expect(r.workload.requests).toBe(16);
    expect(r.nodes).toBe(2);
    for (const k of ['byteHitRate', 'layerHitRate'] as const) {
      for (const a of [r, hostpull, flattened!, stacked!]) {
        expect(a[k]).toBeGreaterThanOrEqual(0);
        expect(a[k]).toBeLessThanOrEqual(1);
      }
    }
    // The client's counts equal the registry's own access log: whole pulls for the baselines
    // (they talk to the registry directly), blob bytes for hostpull (its manifests come from the
    // server's memory).
    for (const a of [hostpull, flattened!, stacked!]) expect(a.byteMismatches).toBe(0);
    expect(flattened!.bytesFetched).toBe(flattened!.registryBytes);
    expect(stacked!.bytesFetched).toBe(stacked!.registryBytes);
    expect(hostpull.blobBytesFetched).toBe(hostpull.registryBlobBytes);
    expect(hostpull.blobBytesFetched).toBeGreaterThan(0);
    expect(r.bytesFetched).toBe(hostpull.bytesFetched);
    expect(r.registryBytes).toBe(hostpull.registryBytes);
    // hostpull is never above either baseline, on the client side or in registry egress.
    for (const b of [flattened!, stacked!]) {
      expect(hostpull.bytesFetched).toBeLessThanOrEqual(b.bytesFetched);
      expect(hostpull.registryBytes).toBeLessThanOrEqual(b.registryBytes);
      expect(hostpull.byteHitRate).toBeGreaterThanOrEqual(b.byteHitRate);
    }
    // Each node downloads a package layer at most once.
    const perNode = [0, 1].map((n) => hostpull.requestsDetail.filter((d) => d.node === n).length);
    expect(perNode).toEqual([8, 8]);
    expect(hostpull.layerMisses).toBeLessThanOrEqual(2 * hostpull.distinctLayers);
    const html = await readFile(report, 'utf8');
    expect(html).toContain('<svg');
    expect(html).toContain('Cumulative bytes fetched');
  });

  it('replays a trace with exact hit counts for hostpull and both baselines', async () => {
    const trace = join(tmp, 'trace.txt');
    await writeFile(trace, '# the peers harness steps, then step 2 again\n0 JDK11.0-MVN3.8-GRD7.0\n10 JDK11.0-MVN3.7-GRD7.0\n20 JDK17.0-MVN3.8-GRD7.0\n30 GRD7.0-JDK11.0-MVN3.7\n');
    const r = await runBench({ traceFile: trace, seed: 2, scale: 0.0005, tmpDir: tmp });
    expect(r.source).toBe('trace');
    expect(r.workload.distinctTags).toBe(3);
    const hits = (name: 'hostpull' | 'flattened' | 'stacked') => r.approaches[name]!.requestsDetail.map((d) => `${d.layerHits}/${d.layers}`);
    // base + 3 packages; a new package version is the only miss.
    expect(hits('hostpull')).toEqual(['0/4', '3/4', '3/4', '4/4']);
    // JDK17.0 below MVN3.8 changes MVN3.8's stacked layer too.
    expect(hits('stacked')).toEqual(['0/4', '3/4', '2/4', '4/4']);
    expect(hits('flattened')).toEqual(['0/1', '0/1', '0/1', '1/1']);
    expect(r.layerHitRate).toBe(10 / 16);
    expect(r.approaches.stacked!.layerHitRate).toBe(9 / 16);
    expect(r.approaches.flattened!.layerHitRate).toBe(1 / 4);
    // The repeat, spelled in another order, is a tag this store has not got: one GET of its
    // manifest, whose digest is already complete here, and nothing else (no config, no layer).
    const repeat = r.approaches.hostpull.requestsDetail[3]!;
    expect(repeat.bytesFetched).toBeGreaterThan(0);
    expect(repeat.bytesFetched).toBeLessThan(16 * 1024);
    expect(repeat.registryBytes).toBe(0);
    for (const a of Object.values(r.approaches)) expect(a!.byteMismatches).toBe(0);
  });
});
