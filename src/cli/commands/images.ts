import type { Command } from 'commander';
import { shortDigest } from '../../oci/digest.js';
import { action, globalOptions } from '../context.js';
import { formatBytes, printJson, table } from '../format.js';
import { addDaemonOptions, withHostApi } from '../host.js';

export function registerImagesCommand(program: Command): void {
  const cmd = program.command('images').description('list the images this host has pulled').option('--json', 'print as JSON');
  addDaemonOptions(cmd).action(
    action(async (opts: { json?: boolean; socket?: string; daemon: boolean }, cmd: Command) => {
      await withHostApi(globalOptions(cmd), opts, async (api) => {
        const images = await api.images();
        if (opts.json) return printJson(images);
        const rows = [['REFERENCE', 'DIGEST', 'LAYERS', 'SIZE', 'RESOLVED']];
        for (const i of images) rows.push([i.reference, shortDigest(i.manifestDigest), String(i.layers), formatBytes(i.size), i.resolvedAt]);
        process.stdout.write(table(rows));
      });
    }),
  );
}
