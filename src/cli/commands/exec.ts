import { Option, type Command } from 'commander';
import { action, checkTtyFlag, collect, globalOptions, usageError } from '../context.js';
import { withHost } from '../host.js';

export function registerExecCommand(program: Command): void {
  program
    .command('exec')
    .description('run a command in a container that hostpull run is running (its --name, its id, or the start of it, from hostpull ps)')
    .argument('<container>', 'container name, id, or a prefix of the id')
    .argument('<command...>', 'command and arguments (after --)')
    .option('-t, --tty', 'allocate a terminal (stdin must be one)')
    .option('-i, --interactive', 'keep stdin attached (it always is: accepted as podman spells it)')
    .addOption(new Option('-e, --env <KEY=VAL>', 'set an environment variable (repeatable)').argParser(collect))
    .option('-u, --user <user>', 'user[:group] or uid[:gid], resolved in the container')
    .option('-w, --workdir <dir>', 'working directory inside the container')
    .addHelpText('after', '\nExamples:\n  hostpull exec 3f2a -- ls /opt\n  hostpull exec -t 3f2a9c81d0e4 -- /bin/sh\n')
    .action(
      action(async (id: string, command: string[], opts: { tty?: boolean; env?: string[]; user?: string; workdir?: string }, cmd: Command) => {
        for (const kv of opts.env ?? []) if (!/^[^=]+=/.test(kv)) throw usageError(`-e ${kv}: expected KEY=VALUE`);
        checkTtyFlag(opts.tty);
        const g = globalOptions(cmd);
        const { execContainer } = await import('../../container/index.js');
        return withHost(g, async (host) => {
          const result = await execContainer(host.store, id, {
            args: command,
            tty: opts.tty ?? false,
            ...(opts.env ? { env: opts.env } : {}),
            ...(opts.user ? { user: opts.user } : {}),
            ...(opts.workdir ? { cwd: opts.workdir } : {}),
            logger: host.logger,
          });
          return result.exitCode;
        });
      }),
    );
}
