import { Command, Option } from 'commander';
import { setFlagsFromString } from 'node:v8';
import { collect } from './context.js';
import { defaultRoot } from '../defaults.js';
import { commands } from './commands/index.js';
import { durationOption, numberOption, sizeOption } from './options.js';

/**
 * Composition root of the CLI: global options, one file per verb under commands/, each verb
 * only parses flags, calls the library and renders.
 */
export function buildProgram(): Command {
  const program = new Command('hostpull')
    .description('Build container images out of independent, reusable package layers')
    .version('0.1.0')
    .addOption(new Option('--root <dir>', 'state directory').default(defaultRoot()))
    .addOption(new Option('--server <host:port>', 'hostpull server (or registry) that short references resolve against').env('HOSTPULL_SERVER'))
    .addOption(new Option('--namespace <repo>', 'repository under which the server offers composites').env('HOSTPULL_NAMESPACE').default('hostpull'))
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
    .addOption(new Option('--log-level <level>', 'log level for the stderr log').choices(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('warn'))
    .addOption(numberOption('--max-expansion-ratio <n>', 'refuse a layer whose unpacked size exceeds n × its compressed size + 64 MiB (default 100)', { above: 0 }).env('HOSTPULL_MAX_EXPANSION_RATIO'))
    .addOption(sizeOption('--disk-reserve <size>', 'space an unpack leaves free on the store\'s filesystem (default: 5% of it, at most 512M)').env('HOSTPULL_DISK_RESERVE'))
    .showHelpAfterError()
    .exitOverride()
    .hook('preAction', (_program, action) => {
      if (!LONG_RUNNING.has(action.name())) preferQuickExit();
    });
  for (const register of commands) register(program);
  return program;
}

/** Verbs that serve for a long time: they keep V8's defaults. */
const LONG_RUNNING = new Set(['daemon', 'serve', 'bench', 'demo']);

/**
 * undici parses HTTP with llhttp compiled to WebAssembly. V8 compiles it quickly (Liftoff), then
 * again optimised on a background thread, and a process that is done waits for that second
 * compile before it exits: about 130 ms of every short command here. A short command gains
 * nothing from the optimised code, so it stays with the first tier.
 */
function preferQuickExit(): void {
  setFlagsFromString('--liftoff-only');
}
