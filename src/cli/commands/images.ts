import type { Command } from 'commander';
import { shortDigest } from '../../oci/index.js';
import { formatBytes, table } from '../format.js';
import { registerHostQuery } from '../host-options.js';

export function registerImagesCommand(program: Command): void {
  registerHostQuery(program, {
    name: 'images',
    description: 'list the images this host has pulled',
    query: (api) => api.images(),
    render: (images) => table([['REFERENCE', 'DIGEST', 'LAYERS', 'SIZE', 'RESOLVED'], ...images.map((i) => [i.reference, shortDigest(i.manifestDigest), String(i.layers), formatBytes(i.size), i.resolvedAt])]),
  });
}
