import type { Command } from 'commander';
import { HostpullError } from '../../errors.js';
import type { CatalogClient } from '../../publish/index.js';
import { action, collect, globalOptions } from '../context.js';
import { parseEnvFlags, readTokenFile } from './publish.js';

async function client(cmd: Command, token?: string): Promise<CatalogClient> {
  const g = globalOptions(cmd);
  if (!g.server) throw new HostpullError('USAGE', 'no server given', { hint: 'pass --server HOST:PORT or set HOSTPULL_SERVER' });
  const { CatalogClient } = await import('../../publish/index.js');
  return new CatalogClient({ server: g.server, token });
}

export function registerCatalogCommand(program: Command): void {
  const catalog = program.command('catalog').description('list and change the code names a hostpull server knows');
  catalog
    .command('ls')
    .description('list code names')
    .option('--json', 'print as JSON')
    .action(
      action(async (flags: { json?: boolean }, cmd: Command) => {
        const entries = await (await client(cmd)).list();
        if (flags.json) {
          process.stdout.write(`${JSON.stringify(Object.fromEntries(entries), null, 2)}\n`);
          return;
        }
        for (const [code, e] of entries) {
          const extra = [e.digest ? `pinned=${e.digest}` : '', e.group ? `group=${e.group}` : '', e.allowSetuid ? 'allow-setuid' : '', e.description ?? ''].filter((x) => x !== '');
          process.stdout.write(`${code}\t${e.image}\t${e.prefix}${extra.map((x) => `\t${x}`).join('')}\n`);
        }
      }),
    );
  catalog
    .command('add <code> <image>')
    .description('register CODE for the package image IMAGE (repo:tag in the server\'s upstream); the server checks the package and pins its digest. Adding a code name again re-registers it: the way to move it to a new version')
    .requiredOption('--prefix <dir>', 'directory the package owns, e.g. /opt/jdk-11.0')
    .option('--env <K=V>', 'environment variable (repeatable)', collect)
    .option('--path-add <dir>', 'directory prepended to PATH (repeatable)', collect)
    .option('--description <text>', 'description')
    .option('--group <name>', 'exclusivity group')
    .option('--allow-setuid', 'let the package hold setuid/setgid files and file capabilities (refused otherwise, here and on every node)')
    .option('--token-file <file>', 'the server\'s catalog token')
    .action(
      action(async (code: string, image: string, flags: { prefix: string; env?: string[]; pathAdd?: string[]; description?: string; group?: string; allowSetuid?: boolean; tokenFile?: string }, cmd: Command) => {
        const token = await readTokenFile(flags.tokenFile);
        const registered = await (await client(cmd, token)).put(code, {
          image,
          prefix: flags.prefix,
          env: parseEnvFlags(flags.env),
          pathAdd: flags.pathAdd ?? [],
          ...(flags.description !== undefined ? { description: flags.description } : {}),
          ...(flags.group !== undefined ? { group: flags.group } : {}),
          ...(flags.allowSetuid ? { allowSetuid: true } : {}),
        });
        process.stdout.write(`registered ${code} → ${image}${registered.digest ? `@${registered.digest}` : ''}\n`);
      }),
    );
  catalog
    .command('rm <code>')
    .description('unregister CODE')
    .option('--token-file <file>', 'the server\'s catalog token')
    .action(
      action(async (code: string, flags: { tokenFile?: string }, cmd: Command) => {
        await (await client(cmd, await readTokenFile(flags.tokenFile))).remove(code);
        process.stdout.write(`removed ${code}\n`);
      }),
    );
}
