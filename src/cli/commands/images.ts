import type { Command } from 'commander';
import { shortDigest } from '../../oci/digest.js';
import { action, globalOptions } from '../context.js';
import { formatBytes, printJson, table } from '../format.js';
import { withHost } from '../host.js';

export function registerImagesCommand(program: Command): void {
  program
    .command('images')
    .description('list the images this host has pulled')
    .option('--json', 'print as JSON')
    .action(
      action(async (opts: { json?: boolean }, cmd: Command) => {
        await withHost(globalOptions(cmd), async ({ store }) => {
          const images = store.images.list().map((img) => {
            const layers = store.images.layers(img.manifestDigest);
            return { ...img, layers: layers.length, size: layers.reduce((n, l) => n + l.size, 0), resolvedAt: new Date(img.resolvedAt).toISOString() };
          });
          if (opts.json) return printJson(images);
          const rows = [['REFERENCE', 'DIGEST', 'LAYERS', 'SIZE', 'RESOLVED']];
          for (const i of images) rows.push([i.reference, shortDigest(i.manifestDigest), String(i.layers), formatBytes(i.size), i.resolvedAt]);
          process.stdout.write(table(rows));
        });
      }),
    );
}
