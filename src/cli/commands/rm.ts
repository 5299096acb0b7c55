import type { Command } from 'commander';
import { action, globalOptions } from '../context.js';
import { eachContainer } from '../each-container.js';
import { withHost } from '../host.js';

export function registerRmCommand(program: Command): void {
  program
    .command('rm')
    .description('remove containers that are not running: kept by hostpull run --keep, or left by a killed run (upper layer, mount record and name)')
    .argument('<container...>', 'container names, ids or id prefixes (from hostpull ps)')
    .addHelpText('after', '\nA running container is refused (`hostpull stop` it first). Once removed, its layers are no longer held: gc may collect them.\n\nExamples:\n  hostpull rm build-1\n  hostpull rm 3f2a\n')
    .action(
      action(async (ids: string[], _opts: unknown, cmd: Command) => {
        const { removeStoppedContainer } = await import('../../container/index.js');
        return withHost(globalOptions(cmd), (host) =>
          eachContainer(
            ids,
            (id) => removeStoppedContainer(host.store, id, host.logger),
            (c) => c.name ?? c.id,
          ),
        );
      }),
    );
}
