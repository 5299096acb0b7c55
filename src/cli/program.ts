import { Command, Option } from 'commander';
import { collect } from './context.js';
import { DEFAULT_NAMESPACE, defaultRoot } from '../defaults.js';
import { DEFAULT_LOG_LEVEL, LOG_FORMATS, LOG_LEVELS } from '../log.js';
import { COMMANDS } from './commands/index.js';
import { durationOption, honourOffValues, numberOption, sizeOption } from './options.js';
import { applyV8Flags } from '../util/index.js';
import { v8FlagsFor } from './verb-v8-flags.js';

/**
 * Composition root of the CLI: global options, one file per verb under commands/, each verb
 * only parses flags, calls the library and renders. Given the command line, only the module of
 * the verb it names is loaded (all of them for help, a mistyped verb or none): measured on an
 * up-to-date `hostpull pull`, loading every verb cost ~15-20 ms of a ~0.25 s command.
 */
export async function buildProgram(argv?: readonly string[]): Promise<Command> {
  const program = new Command('hostpull')
    .description('Build container images out of independent, reusable package layers')
    .version('0.1.0')
    .addOption(new Option('--root <dir>', 'state directory').default(defaultRoot()))
    .addOption(new Option('--server <host:port>', 'hostpull server (or registry) that short references resolve against').env('HOSTPULL_SERVER'))
    .addOption(new Option('--namespace <repo>', 'repository under which the server offers composites').env('HOSTPULL_NAMESPACE').default(DEFAULT_NAMESPACE))
    .addOption(new Option('--insecure-registry <host:port>', 'allow plain http to this non-loopback registry (repeatable)').argParser(collect))
    // Node side (pull, run, mount, daemon). No commander default: a flag given explicitly makes a
    // verb work in-process rather than through a daemon that has its own settings.
    .addOption(durationOption('--registry-headers-timeout <duration>', 'give up on a registry response whose headers take longer (default 30s)', { above: 0 }).env('HOSTPULL_REGISTRY_HEADERS_TIMEOUT'))
    .addOption(durationOption('--registry-idle-timeout <duration>', 'a download that receives no byte for this long resumes with Range (default 30s)', { above: 0 }).env('HOSTPULL_REGISTRY_IDLE_TIMEOUT'))
    .addOption(
      durationOption('--registry-retry-budget <duration>', 'how long a failing registry is retried (backoff with jitter) before a pull fails (default 60s)', { above: 0 }).env(
        'HOSTPULL_REGISTRY_RETRY_BUDGET',
      ),
    )
    .addOption(new Option('--log-level <level>', 'log level for the stderr log').choices([...LOG_LEVELS]).default(DEFAULT_LOG_LEVEL))
    .addOption(new Option('--log-format <format>', 'stderr log lines as text for a person, or as json objects for a log collector (default: text; for daemon and serve, json unless stderr is a terminal)').choices([...LOG_FORMATS]).env('HOSTPULL_LOG_FORMAT'))
    .addOption(numberOption('--max-expansion-ratio <n>', 'refuse a layer whose unpacked size exceeds n × its compressed size + 64 MiB (default 100)', { above: 0 }).env('HOSTPULL_MAX_EXPANSION_RATIO'))
    .addOption(sizeOption('--disk-reserve <size>', 'space an unpack leaves free on the store\'s filesystem (default: 5% of it, at most 512M)').env('HOSTPULL_DISK_RESERVE'))
    .addOption(
      new Option('--sync-fs', 'flush each unpacked layer to disk (syncfs) before recording it, so a power loss cannot leave a recorded layer with lost data; slower pulls').env(
        'HOSTPULL_SYNC_FS',
      ),
    )
    .showHelpAfterError()
    .exitOverride()
    .hook('preAction', (_program, action) => {
      honourOffValues(action);
      applyV8Flags(v8FlagsFor(action.name()));
    });
  const args = argv?.slice(2) ?? [];
  const verb = argv ? firstVerb(program, args) : undefined;
  const named = COMMANDS.filter((c) => verb !== undefined && c.verbs.includes(verb));
  for (const c of named.length > 0 ? named : versionOnly(verb, args) ? [] : COMMANDS) (await c.load())(program);
  return program;
}

/**
 * `hostpull --version` (or `-V`) without a verb or a help flag: commander prints the version and
 * stops before any verb matters, so none is loaded (loading them all took ~90 ms of it).
 */
function versionOnly(verb: string | undefined, args: readonly string[]): boolean {
  return verb === undefined && args.some((a) => a === '--version' || a === '-V') && !args.some((a) => a === '--help' || a === '-h');
}

/** The first word after the root's own options (skipping their values), or undefined. */
function firstVerb(program: Command, args: readonly string[]): string | undefined {
  const takesValue = new Set(program.options.filter((o) => o.required || o.optional).flatMap((o) => [o.long, o.short].filter((f): f is string => f !== undefined)));
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--') return undefined;
    if (!a.startsWith('-')) return a;
    if (takesValue.has(a)) i++;
  }
  return undefined;
}
