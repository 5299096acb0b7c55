import type { Command } from 'commander';
import { HostpullError } from '../../errors.js';
import { formatReference } from '../../oci/reference.js';
import { action, globalOptions } from '../context.js';
import { printJson } from '../format.js';
import { withHost } from '../host.js';

export function registerInspectCommand(program: Command): void {
  program
    .command('inspect')
    .description('print the manifest and config of an image (from the store, or from the registry with --remote)')
    .argument('<ref>', 'composite tag or full reference')
    .option('--remote', 'ask the registry instead of the local store')
    .action(
      action(async (input: string, opts: { remote?: boolean }, cmd: Command) => {
        const { parseImageConfig, parseManifest } = await import('../../oci/manifest.js');
        await withHost(globalOptions(cmd), async ({ store, client, resolve }) => {
          const ref = resolve(input);
          const name = formatReference(ref);
          if (opts.remote) {
            const m = await client.getManifest(ref);
            const parsed = parseManifest(m.bytes, m.mediaType, name);
            let config: unknown;
            if (parsed.kind === 'manifest') {
              config = parseImageConfig(await client.fetchBlobBytes(ref, parsed.manifest.config.digest, 8 << 20), `config of ${name}`);
            }
            return printJson({ reference: name, digest: m.digest, mediaType: m.mediaType, manifest: JSON.parse(m.bytes.toString('utf8')), config });
          }
          const image = ref.digest ? store.images.byManifest(ref.digest) : store.images.get(name);
          if (!image) {
            throw new HostpullError('IMAGE_UNKNOWN', `${name} is not in the store at ${store.layout.root}`, {
              hint: `pull it first (hostpull pull ${input}) or use --remote`,
            });
          }
          const manifest = JSON.parse((await store.blobs.readBytes(image.manifestDigest)).toString('utf8'));
          const config = JSON.parse((await store.blobs.readBytes(image.configDigest)).toString('utf8'));
          const layers = store.images.layers(image.manifestDigest).map((l) => {
            const unpacked = store.layers.get(l.diffId);
            return { digest: l.blobDigest, diffId: l.diffId, size: l.size, mediaType: l.mediaType, unpackedAt: unpacked ? store.layers.dir(unpacked) : null };
          });
          printJson({ reference: image.reference, digest: image.manifestDigest, indexDigest: image.indexDigest, layers, manifest, config });
        });
      }),
    );
}
