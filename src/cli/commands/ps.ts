import type { Command } from 'commander';
import { action, globalOptions } from '../context.js';
import { formatAge, printJson, table } from '../format.js';
import { withHost } from '../host.js';

/** A command line as one short cell: arguments with spaces quoted, cut at 40 characters. */
function commandCell(args: readonly string[]): string {
  const line = args.map((a) => (/[\s"']/.test(a) ? JSON.stringify(a) : a)).join(' ');
  return line.length > 40 ? `${line.slice(0, 39)}…` : line;
}

function status(c: { state: string; ownerPid: number | null; exitCode: number | null }): string {
  if (c.state === 'running') return `running (hostpull pid ${c.ownerPid})`;
  if (c.state === 'exited' && c.exitCode !== null) return `exited (${c.exitCode})`;
  return c.state;
}

export function registerPsCommand(program: Command): void {
  program
    .command('ps')
    .description('list the containers of this store: those hostpull run is running, those kept by run --keep, rootfs prepared for an orchestrator, and leftovers of a killed run')
    .option('--json', 'print as JSON')
    .addHelpText(
      'after',
      '\nSTATUS: running (its hostpull run is alive), exited (kept by hostpull run --keep, with its exit status when known; unmounted, until hostpull rm), ' +
        'prepared (handed to an orchestrator by the daemon), stale (its hostpull run was killed, its runtime may still run it; hostpull rm, the next run or a daemon start removes it, or keeps it when it was run with --keep).\n',
    )
    .action(
      action(async (opts: { json?: boolean }, cmd: Command) => {
        const { listContainers } = await import('../../container/index.js');
        await withHost(globalOptions(cmd), async (host) => {
          const containers = await listContainers(host.store);
          if (opts.json) return printJson(containers);
          process.stdout.write(
            table([
              ['CONTAINER ID', 'IMAGE', 'COMMAND', 'CREATED', 'STATUS', 'NAMES'],
              ...containers.map((c) => [c.id, c.reference ?? '-', commandCell(c.command), formatAge(c.createdAt), status(c), c.name ?? '']),
            ]),
          );
        });
      }),
    );
}
