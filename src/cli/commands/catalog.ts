import type { Command } from 'commander';
import { HostpullError } from '../../errors.js';
import type { CatalogClient } from '../../publish/catalog-client.js';
import { action, collect, globalOptions } from '../context.js';
import { parseEnvFlags, readTokenFile } from './publish.js';

async function client(cmd: Command, token?: string): Promise<CatalogClient> {
  const g = globalOptions(cmd);
  if (!g.server) throw new HostpullError('USAGE', 'no server given', { hint: 'pass --server HOST:PORT or set HOSTPULL_SERVER' });
  const { CatalogClient } = await import('../../publish/catalog-client.js');
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
          process.stdout.write(`${JSON.stringify(entries, null, 2)}\n`);
          return;
        }
        for (const [code, e] of Object.entries(entries)) {
          process.stdout.write(`${code}\t${e.image}\t${e.prefix}${e.group ? `\tgroup=${e.group}` : ''}${e.description ? `\t${e.description}` : ''}\n`);
        }
      }),
    );
  catalog
    .command('add <code> <image>')
    .description('register CODE for the package image IMAGE (repo:tag in the server\'s upstream)')
    .requiredOption('--prefix <dir>', 'directory the package owns, e.g. /opt/jdk-11.0')
    .option('--env <K=V>', 'environment variable (repeatable)', collect)
    .option('--path-add <dir>', 'directory prepended to PATH (repeatable)', collect)
    .option('--description <text>', 'description')
    .option('--group <name>', 'exclusivity group')
    .option('--token-file <file>', 'the server\'s catalog token')
    .action(
      action(async (code: string, image: string, flags: { prefix: string; env?: string[]; pathAdd?: string[]; description?: string; group?: string; tokenFile?: string }, cmd: Command) => {
        const token = await readTokenFile(flags.tokenFile);
        await (await client(cmd, token)).put(code, {
          image,
          prefix: flags.prefix,
          env: parseEnvFlags(flags.env),
          pathAdd: flags.pathAdd ?? [],
          ...(flags.description !== undefined ? { description: flags.description } : {}),
          ...(flags.group !== undefined ? { group: flags.group } : {}),
        });
        process.stdout.write(`registered ${code} → ${image}\n`);
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
