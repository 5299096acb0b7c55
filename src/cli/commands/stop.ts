import type { Command } from 'commander';
import { action, globalOptions } from '../context.js';
import { eachContainer } from '../each-container.js';
import { withHost } from '../host.js';
import { durationOption } from '../options.js';

export function registerStopCommands(program: Command): void {
  program
    .command('stop')
    .description('stop containers that hostpull run is running: SIGTERM, then SIGKILL after --time; returns once each is removed')
    .argument('<container...>', 'container names, ids or id prefixes (from hostpull ps)')
    .addOption(durationOption('-t, --time <duration>', 'how long to wait after SIGTERM before SIGKILL (0s: at once)', { min: 0, defaultText: '10s' }))
    .action(
      action(async (ids: string[], opts: { time: number }, cmd: Command) => {
        const { stopContainer } = await import('../../container/index.js');
        return withHost(globalOptions(cmd), (host) =>
          eachContainer(
            ids,
            (id) => stopContainer(host.store, id, { timeoutMs: opts.time, logger: host.logger }),
            ({ container, killed }) => `${container.name ?? container.id}${killed ? ' (killed after the timeout)' : ''}`,
          ),
        );
      }),
    );

  program
    .command('kill')
    .description('send a signal to the init process of containers that hostpull run is running')
    .argument('<container...>', 'container names, ids or id prefixes (from hostpull ps)')
    .option('-s, --signal <signal>', 'signal name or number', 'KILL')
    .action(
      action(async (ids: string[], opts: { signal: string }, cmd: Command) => {
        const { killContainer } = await import('../../container/index.js');
        return withHost(globalOptions(cmd), (host) =>
          eachContainer(
            ids,
            (id) => killContainer(host.store, id, opts.signal),
            (c) => c.name ?? c.id,
          ),
        );
      }),
    );
}
