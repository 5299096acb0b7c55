import { writeFile } from 'node:fs/promises';
import type { ApproachResult, BenchResult } from '../../bench/index.js';
import { Command, Option } from 'commander';
import { action, globalOptions, loggerFor } from '../context.js';
import { formatBytes, formatPercent, printJson, table } from '../format.js';
import { withInterrupt } from '../interrupt.js';
import { numberOption } from '../options.js';

interface BenchFlags {
  packages: number;
  versions: number;
  requests: number;
  seed: number;
  scale: number;
  zipf: number;
  maxCodes: number;
  trace?: string;
  nodes: number;
  assign: 'round-robin' | 'random';
  baselines: boolean;
  unpack: boolean;
  json?: boolean;
  report?: string;
  keep?: boolean;
  tmpDir?: string;
}

function render(r: BenchResult): string {
  const all = (['hostpull', 'flattened', 'stacked'] as const).map((n) => r.approaches[n]).filter((a): a is ApproachResult => a !== undefined);
  const hp = r.approaches.hostpull;
  const rows = [['approach', 'layer hits', 'byte hits', 'fetched', 'vs hostpull', 'registry egress', 'store', 'cold pull', 'warm pull']];
  for (const a of all) {
    rows.push([
      a.name,
      formatPercent(a.layerHitRate),
      formatPercent(a.byteHitRate),
      formatBytes(a.bytesFetched),
      `${(a.bytesFetched / Math.max(1, hp.bytesFetched)).toFixed(2)}x`,
      formatBytes(a.registryBytes),
      formatBytes(a.storeBytes),
      `${a.cold.medianMs}ms (${a.cold.pulls})`,
      `${a.warm.medianMs}ms (${a.warm.pulls})`,
    ]);
  }
  const head =
    `${r.workload.requests} requests, ${r.workload.distinctTags} combinations, ${r.catalog.packages} packages / ${r.catalog.versions} versions, ` +
    `seed ${r.seed}, ${r.nodes} node${r.nodes > 1 ? 's' : ''}, ${(r.durationMs / 1000).toFixed(1)}s\n`;
  const mismatches = all.filter((a) => a.byteMismatches > 0).map((a) => `${a.name}: ${a.byteMismatches}`);
  const warn = mismatches.length ? `warning: client and registry byte counts differ (${mismatches.join(', ')})\n` : '';
  return head + table(rows) + warn;
}

export function registerBenchCommand(program: Command): void {
  program
    .command('bench')
    .description('replay a workload of composite tags against fresh stores and compare bytes and hit rates with flattened and Dockerfile-style images')
    .addOption(numberOption('--packages <n>', 'packages in the synthetic catalog', { integer: true, min: 1, max: 1000, defaultValue: 6 }))
    .addOption(numberOption('--versions <n>', 'versions per package', { integer: true, min: 1, max: 100, defaultValue: 3 }))
    .addOption(numberOption('--requests <n>', 'requests in the synthetic workload', { integer: true, min: 1, max: 1_000_000, defaultValue: 20 }))
    .addOption(numberOption('--seed <n>', 'seed of catalog, workload and layer content', { integer: true, min: 0, max: 2 ** 32 - 1, defaultValue: 1 }))
    .addOption(numberOption('--scale <x>', 'size scale of the 1 MB-200 MB package spread (0 < x <= 1)', { min: 1e-6, max: 1, defaultValue: 0.005 }))
    .addOption(numberOption('--zipf <s>', 'Zipf exponent of package popularity', { min: 0, max: 10, defaultValue: 1 }))
    .addOption(numberOption('--max-codes <n>', 'most code names per tag', { integer: true, min: 1, max: 20, defaultValue: 5 }))
    .option('--trace <file>', 'replay this trace (one tag per line, optional leading timestamp) instead')
    .addOption(numberOption('--nodes <n>', 'node stores the requests are spread over (fleet view)', { integer: true, min: 1, max: 1000, defaultValue: 1 }))
    .addOption(new Option('--assign <mode>', 'how requests go to nodes').choices(['round-robin', 'random']).default('round-robin'))
    .option('--no-baselines', 'skip building and pulling the traditional images')
    .option('--no-unpack', 'store blobs only; do not unpack layers')
    .option('--json', 'print the full result as JSON')
    .option('--report <file.html>', 'write a self-contained HTML report with charts')
    .option('--tmp-dir <dir>', 'where the work dir (registry data, node stores) is made; default the system temp dir')
    .option('--keep', 'keep the work dir (registry data and stores)')
    .addHelpText('after', '\nExamples:\n  hostpull bench --json --packages 6 --requests 20 --seed 1\n  hostpull bench --nodes 4 --requests 200 --report bench.html\n')
    .action(
      action(async (opts: BenchFlags, cmd: Command) => {
        const { renderHtmlReport } = await import('../../bench/index.js');
        const { runBench } = await import('../../bench/index.js');
        const global = globalOptions(cmd);
        await withInterrupt(async ({ signal }) => {
          const result = await runBench({
            packages: opts.packages,
            versions: opts.versions,
            requests: opts.requests,
            seed: opts.seed,
            scale: opts.scale,
            zipfExponent: opts.zipf,
            maxCodes: opts.maxCodes,
            traceFile: opts.trace,
            nodes: opts.nodes,
            assign: opts.assign,
            baselines: opts.baselines,
            unpack: opts.unpack,
            keep: opts.keep ?? false,
            ...(opts.tmpDir ? { tmpDir: opts.tmpDir } : {}),
            logger: loggerFor(global),
            signal,
            onProgress: opts.json || !process.stderr.isTTY ? undefined : (p) => process.stderr.write(`\r${p.approach}: ${p.done}/${p.total}   ${p.done === p.total ? '\n' : ''}`),
          });
          if (opts.report) await writeFile(opts.report, renderHtmlReport(result));
          if (opts.json) printJson(result);
          else process.stdout.write(render(result) + (opts.report ? `report: ${opts.report}\n` : ''));
        });
      }),
    );
}
