import type { Command } from 'commander';
import { HostpullError } from '../../errors.js';
import { formatReference } from '../../oci/index.js';
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
        const { parseImageConfig, parseManifest } = await import('../../oci/index.js');
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
              hint: `pull it first (\`hostpull pull ${input}\`) or use --remote`,
            });
          }
          const { layerClaims } = await import('../../pull/index.js');
          const manifestBytes = await store.blobs.readBytes(image.manifestDigest);
          const manifest = JSON.parse(manifestBytes.toString('utf8'));
          const config = JSON.parse((await store.blobs.readBytes(image.configDigest)).toString('utf8'));
          const parsed = parseManifest(manifestBytes, undefined, name);
          const claims = parsed.kind === 'manifest' ? layerClaims(parsed.manifest, name) : [];
          const layers = store.images.layers(image.manifestDigest).map((l, i) => {
            const unpacked = store.layers.get(l.diffId);
            const footprint = unpacked ? store.layers.footprint(l.diffId) : null;
            const claim = claims[i];
            return {
              digest: l.blobDigest,
              diffId: l.diffId,
              size: l.size,
              mediaType: l.mediaType,
              unpackedAt: unpacked ? store.layers.dir(unpacked) : null,
              // What the layer may do (DESIGN §2): a package owns its prefix; a base layer the rest.
              role: claim ? 'package' : 'base',
              ...(claim ? { codeName: claim.code, prefix: `/${claim.prefix}`, allowSetuid: claim.allowSetuid } : {}),
              // Files that raise privileges when run, as recorded at unpack (null: not unpacked, or unpacked before they were recorded).
              setuid: footprint ? footprint.setid.map((p) => `/${p}`) : null,
              capabilities: footprint ? footprint.capabilities.map((p) => `/${p}`) : null,
              ...(footprint && (footprint.setidCount > footprint.setid.length || footprint.capabilityCount > footprint.capabilities.length)
                ? { setuidCount: footprint.setidCount, capabilitiesCount: footprint.capabilityCount }
                : {}),
            };
          });
          printJson({ reference: image.reference, digest: image.manifestDigest, indexDigest: image.indexDigest, layers, manifest, config });
        });
      }),
    );
}
