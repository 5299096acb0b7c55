import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { HostpullError } from '../../errors.js';
import { action, collect, globalOptions, loggerFor } from '../context.js';
import { withInterrupt } from '../interrupt.js';
import { sizeOption } from '../options.js';

interface PublishFlags {
  code: string;
  prefix: string;
  env?: string[];
  pathAdd?: string[];
  repository?: string;
  tag?: string;
  description?: string;
  group?: string;
  allowSetuid?: boolean;
  upstream?: string;
  layout?: string;
  tokenFile?: string;
  register?: boolean;
  /** Bytes. */
  spanSize: number;
  json?: boolean;
}

/** `K=V` flags into a map; a flag without `=` is a usage error. */
export function parseEnvFlags(list: string[] = []): Record<string, string> {
  const env: Record<string, string> = {};
  for (const item of list) {
    const eq = item.indexOf('=');
    if (eq <= 0) throw new HostpullError('USAGE', `--env ${JSON.stringify(item)} is not NAME=VALUE`);
    env[item.slice(0, eq)] = item.slice(eq + 1);
  }
  return env;
}

export async function readTokenFile(file: string | undefined): Promise<string | undefined> {
  return file ? (await readFile(file, 'utf8')).trim() : undefined;
}

export function registerPublishCommand(program: Command): void {
  program
    .command('publish <dir>')
    .description('pack DIR as a one-layer package image under its prefix, push it, and register its code name')
    .requiredOption('--code <name>', 'code name, e.g. JDK11.0 ([A-Za-z0-9._], no -)')
    .requiredOption('--prefix <dir>', 'directory the package owns in the image, e.g. /opt/jdk-11.0')
    .option('--env <K=V>', 'environment variable the package sets (repeatable)', collect)
    .option('--path-add <dir>', 'directory prepended to PATH (repeatable)', collect)
    .option('--repository <repo>', 'repository in the upstream (default pkg/<code lowercased>)')
    .option('--tag <tag>', 'tag of the package image', 'latest')
    .option('--description <text>', 'catalog description')
    .option('--group <name>', 'exclusivity group: code names of one group cannot be combined')
    .option('--allow-setuid', 'let the package hold setuid/setgid files and file capabilities (refused otherwise, here and on every node)')
    .option('--upstream <url>', 'upstream registry to push to (default: the OCI layout under --root)')
    .option('--layout <dir>', 'upstream OCI layout directory')
    .option('--token-file <file>', 'the server\'s catalog token')
    .option('--no-register', 'only push the image; do not register the code name with --server')
    .addOption(sizeOption('--span-size <size>', 'uncompressed bytes per independently inflatable span of the layer (lazy pulling reads whole spans)', { defaultText: '1M' }))
    .option('--json', 'print the result as JSON')
    .action(
      action(async (dir: string, flags: PublishFlags, cmd: Command) => {
        const { publishPackage } = await import('../../publish/index.js');
        const { createUpstream } = await import('../../server/index.js');
        const g = globalOptions(cmd);
        const upstream = createUpstream({ upstream: flags.upstream, layout: flags.layout, root: g.root, insecureRegistries: g.insecureRegistry, logger: loggerFor(g) });
        try {
          const register = flags.register !== false && g.server !== undefined;
          // Ctrl-C or a stop ends the build and the push, and the layer being built (as big as
          // the package) leaves the temporary directory with them.
          const result = await withInterrupt(async ({ signal }) => publishPackage({
            dir,
            code: flags.code,
            prefix: flags.prefix,
            env: parseEnvFlags(flags.env),
            pathAdd: flags.pathAdd ?? [],
            repository: flags.repository,
            tag: flags.tag,
            description: flags.description,
            group: flags.group,
            allowSetuid: flags.allowSetuid === true,
            upstream,
            spanSize: flags.spanSize,
            server: register ? { url: g.server!, token: await readTokenFile(flags.tokenFile) } : undefined,
            signal,
          }));
          if (flags.json) {
            process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
          } else {
            process.stdout.write(`${flags.code} → ${result.image}@${result.manifestDigest}\nlayer ${result.layerDigest} (${result.size} bytes), table of contents ${result.tocDigest}\n`);
            process.stdout.write(result.registered ? `registered with ${g.server}\n` : 'not registered (no --server)\n');
          }
        } finally {
          await upstream.close();
        }
      }),
    );
}
