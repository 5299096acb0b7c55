import { Option, type Command } from 'commander';
import { HostpullError } from '../../errors.js';
import { action, globalOptions, loggerFor, usageError } from '../context.js';
import { promptLine, readStdin } from '../prompt.js';

const AUTHFILE_HELP = 'registry auth file (default: $REGISTRY_AUTH_FILE, else $XDG_RUNTIME_DIR/containers/auth.json, else /run/containers/UID/auth.json)';

type RegistryKeys = Pick<typeof import('../../registry/index.js'), 'normaliseRegistryKey' | 'splitRegistryKey'>;

/** `host[:port]` from what the user typed (`https://host:5000/` too); a repository path is refused. */
function registryArgument(input: string, keys: RegistryKeys): string {
  const { host, path } = keys.splitRegistryKey(input);
  if (host === '') throw usageError('a registry host is needed, e.g. 127.0.0.1:5000');
  if (path !== '') throw usageError(`${input}: log in to a registry host (such as ${host}), not to a repository`);
  return keys.normaliseRegistryKey(host);
}

export function registerLoginCommands(program: Command): void {
  program
    .command('login')
    .description('log in to a registry: the user name and password are checked against it, then kept in the registry auth file (the one podman login writes)')
    .argument('<registry>', 'registry host[:port]')
    .option('-u, --username <user>', 'user name (asked for on a terminal when not given)')
    .option('-p, --password <password>', 'password (other users can see it in the process list: prefer --password-stdin)')
    .option('--password-stdin', 'read the password from stdin')
    .addOption(new Option('--authfile <path>', AUTHFILE_HELP))
    .addHelpText(
      'after',
      '\nPulls (in-process, through the daemon, and the server\'s upstream reads) look credentials up in this file, then in\n' +
        '~/.config/containers/auth.json and ~/.docker/config.json: a podman, skopeo or docker login serves as well.\n\n' +
        'Examples:\n  echo "$PASSWORD" | hostpull login -u ci --password-stdin registry.example:5000\n  hostpull login 127.0.0.1:5000\n',
    )
    .action(
      action(async (input: string, opts: { username?: string; password?: string; passwordStdin?: boolean; authfile?: string }, cmd: Command) => {
        const g = globalOptions(cmd);
        const { RegistryClient, normaliseRegistryKey, primaryAuthFile, splitRegistryKey, staticCredentials, storeCredential } = await import('../../registry/index.js');
        const registry = registryArgument(input, { normaliseRegistryKey, splitRegistryKey });
        if (opts.password !== undefined && opts.passwordStdin) throw usageError('--password and --password-stdin both given');
        if (opts.passwordStdin && opts.username === undefined) throw usageError('--password-stdin needs --username (stdin holds the password)');
        const username = opts.username ?? (await promptLine('Username: '));
        if (username === '' || username.includes(':')) throw usageError('the user name is empty or holds ":"');
        if (opts.password !== undefined) process.stderr.write('WARNING: a password given with --password is visible to other users; prefer --password-stdin\n');
        const password = opts.password ?? (opts.passwordStdin ? await readStdin() : await promptLine('Password: ', { hidden: true }));
        if (password === '') throw usageError('the password is empty');
        const credential = { username, password };
        // Checked with these credentials only, never with a stored login that would also pass.
        // A person waits for the answer: an unreachable registry fails within 10 s, not a pull's 60.
        const client = new RegistryClient({
          credentials: staticCredentials({ [registry]: credential }),
          insecureRegistries: g.insecureRegistry,
          logger: loggerFor(g),
          retryBudgetMs: 10_000,
          httpClient: 'node',
          ...g.registry,
        });
        try {
          await client.ping(registry);
        } catch (err) {
          if (err instanceof HostpullError && err.code === 'UNAUTHORIZED') {
            throw new HostpullError('UNAUTHORIZED', `login to ${registry} failed: the registry refused user ${JSON.stringify(username)} with this password`, {
              cause: err,
              hint: 'check the user name and password; nothing was stored',
            });
          }
          throw err;
        } finally {
          await client.close();
        }
        const path = opts.authfile ?? primaryAuthFile();
        await storeCredential(path, registry, credential);
        process.stdout.write(`Login Succeeded! (${registry}, kept in ${path})\n`);
      }),
    );

  program
    .command('logout')
    .description('remove the login to a registry (or, with --all, to every registry) from the registry auth file')
    .argument('[registry]', 'registry host[:port]')
    .option('-a, --all', 'remove every login in the auth file')
    .addOption(new Option('--authfile <path>', AUTHFILE_HELP))
    .action(
      action(async (input: string | undefined, opts: { all?: boolean; authfile?: string }) => {
        const { authFileSearchPath, fileWithCredential, normaliseRegistryKey, primaryAuthFile, removeCredential, splitRegistryKey } = await import('../../registry/index.js');
        if (opts.all && input !== undefined) throw usageError('give a registry or --all, not both');
        if (!opts.all && input === undefined) throw usageError('which registry? (or --all)');
        const path = opts.authfile ?? primaryAuthFile();
        if (opts.all) {
          const removed = await removeCredential(path, undefined);
          process.stdout.write(`Removed ${removed} login${removed === 1 ? '' : 's'} from ${path}\n`);
          return;
        }
        const registry = registryArgument(input!, { normaliseRegistryKey, splitRegistryKey });
        if ((await removeCredential(path, registry)) > 0) {
          process.stdout.write(`Removed the login to ${registry} from ${path}\n`);
          return;
        }
        // Not ours to change: say where the credentials a pull would use come from.
        const elsewhere = opts.authfile ? undefined : await fileWithCredential(authFileSearchPath().slice(1), registry);
        throw new HostpullError('NOT_LOGGED_IN', `not logged in to ${registry} in ${path}`, {
          ...(elsewhere ? { hint: `pulls still use the login in ${elsewhere}, which \`hostpull logout\` does not change (\`podman logout --authfile\`, or \`docker logout\`, removes it)` } : {}),
        });
      }),
    );
}
