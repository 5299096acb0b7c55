import type { Command } from 'commander';
import { formatReference, shortDigest } from '../../oci/index.js';
import { action, globalOptions } from '../context.js';
import { printJson } from '../format.js';
import { resolveInput, withHostApi } from '../host.js';
import { addDaemonOptions } from '../host-options.js';

export function registerRmiCommand(program: Command): void {
  const cmd = program
    .command('rmi')
    .description('remove images from this host (all named, or none); gc then frees the layers no other image lists')
    .argument('<ref...>', 'composite tag or full reference, as `hostpull images` lists it')
    .option('--json', 'print the removed images as JSON');
  addDaemonOptions(cmd)
    .addHelpText(
      'after',
      '\nA running container keeps its rootfs: the layers it has mounted are never collected. The layers of a\n' +
        'removed image stay until `hostpull gc` (or the daemon\'s own) finds them unused for --min-age (default 10m).\n',
    )
    .action(
      action(async (inputs: string[], opts: { json?: boolean; socket?: string; daemon: boolean }, cmd: Command) => {
        const options = globalOptions(cmd);
        // Spelled as a pull records them, so `rmi JDK17.0-MVN3.8` finds what `pull JDK17.0-MVN3.8` stored.
        const references = [...new Set(inputs.map((i) => formatReference(resolveInput(options, i))))];
        await withHostApi(options, opts, async (api) => {
          const removed = await api.removeImages(references);
          if (opts.json) return printJson(removed);
          for (const r of removed) process.stdout.write(`removed ${r.reference} (${shortDigest(r.manifestDigest)})\n`);
        });
      }),
    );
}
