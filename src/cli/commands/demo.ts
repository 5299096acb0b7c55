import type { Command } from 'commander';
import { DEFAULT_DEMO_WORK } from '../../defaults.js';
import type { DemoEvent } from '../../demo/index.js';
import { shortDigest } from '../../oci/index.js';
import { action } from '../context.js';
import { formatBytes, formatMs, printJson, table } from '../format.js';
import { withInterrupt } from '../interrupt.js';

function shellQuote(arg: string): string {
  return /^[A-Za-z0-9_./=:@%+,-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}

/** The walkthrough: each command as a user would type it, then exactly what it printed. */
function renderer(out: NodeJS.WritableStream, err: NodeJS.WritableStream): (e: DemoEvent) => void {
  // A child's output may end without a newline (Maven ends with colour resets only): start the
  // next line of the walkthrough on a line of its own.
  let midLine = false;
  return (e) => {
    if (e.type === 'output') {
      const lastLine = e.text.slice(e.text.lastIndexOf('\n') + 1);
      // eslint-disable-next-line no-control-regex
      midLine = lastLine.replace(/\x1b\[[0-9;]*m/g, '') !== '' || (midLine && !e.text.includes('\n'));
    } else if (midLine) {
      out.write('\n');
      midLine = false;
    }
    switch (e.type) {
      case 'section':
        out.write(`\n==> ${e.title}\n`);
        break;
      case 'note':
        out.write(`    # ${e.text}\n`);
        break;
      case 'env':
        out.write(`$ export ${Object.entries(e.vars).map(([k, v]) => `${k}=${shellQuote(v)}`).join(' ')}\n`);
        break;
      case 'command':
        out.write(`$ hostpull ${e.args.map(shellQuote).join(' ')}\n`);
        break;
      case 'output':
        (e.stream === 'stdout' ? out : err).write(e.text);
        break;
      case 'built':
        out.write(`    ${e.what.padEnd(8)} ${e.cached ? 'cached' : `built in ${formatMs(e.ms)}`}: ${e.files} files, ${formatBytes(e.bytes)} (from ${e.debs} .deb files)\n`);
        break;
      case 'published':
        out.write(`    ${e.what.padEnd(8)} ${e.image} ${shortDigest(e.manifestDigest)}, layer ${formatBytes(e.layerSize)}${e.cached ? ' (already published by an earlier run)' : ''}\n`);
        break;
      case 'pull-layers':
        out.write(
          table([
            ['    LAYER', 'PACKAGE', 'SIZE', 'THIS PULL'],
            ...e.layers.map((l) => [`    ${shortDigest(l.digest)}`, l.owner, formatBytes(l.size), l.fetched ? `fetched ${formatBytes(l.fetchedBytes)}` : 'cached, not fetched']),
          ]),
        );
        break;
    }
  };
}

export function registerDemoCommand(program: Command): void {
  program
    .command('demo')
    .description('build JDK 17, Maven 3.8 and Go 1.19 packages from Debian, serve them, and walk through run, pull and stats (root)')
    .option('--work <dir>', 'work directory; what is built there is reused by the next run', DEFAULT_DEMO_WORK)
    .option('--keep-server', 'leave `hostpull serve` running at the end')
    .option('--json', 'print the result as JSON on stdout (the walkthrough goes to stderr)')
    .addHelpText('after', '\nExamples:\n  npm run demo\n  hostpull demo --work /tmp/demo --keep-server\n')
    .action(
      action(async (opts: { work: string; keepServer?: boolean; json?: boolean }) => {
        const { runDemo } = await import('../../demo/index.js');
        await withInterrupt(async ({ signal }) => {
          const render = opts.json ? renderer(process.stderr, process.stderr) : renderer(process.stdout, process.stderr);
          const result = await runDemo({ work: opts.work, keepServer: opts.keepServer ?? false, onEvent: render, signal });
          if (opts.json) return printJson(result);
          const t = result.timings;
          process.stdout.write(
            `\n==> Done in ${formatMs(t.totalMs)} (build ${formatMs(t.buildMs)}, serve+publish ${formatMs(t.publishMs)}, run/pull/stats ${formatMs(t.runMs)})\n` +
              `    ${result.maven.banner}\n    ${result.go.stdout.trim()}\n` +
              `    GO1.19-JDK17.0 fetched ${result.goPull.layerMisses} layer (${formatBytes(result.goPull.bytesFetched)}), reused ${result.goPull.layerHits} (${formatBytes(result.goPull.bytesReused)})\n` +
              (result.server.kept
                ? `    server still running: pid ${result.server.pid} at ${result.server.url}; stop it with \`kill ${result.server.pid}\`\n` +
                  `    try: HOSTPULL_SERVER=${result.server.host} HOSTPULL_ROOT=${result.work}/client hostpull run JDK17.0-GO1.19-MVN3.8 -- sh -c 'java -version; go version'\n`
                : `    server stopped; everything built stays cached in ${result.work} for the next run\n`),
          );
        });
      }),
    );
}
