import type { Command } from 'commander';
import { action, globalOptions } from '../context.js';
import { formatMs, printJson } from '../format.js';
import { withHost } from '../host.js';
import { keepBlobsOption } from '../host-options.js';

export function registerMountCommands(program: Command): void {
  program
    .command('mount')
    .description('mount a read-only view of an image rootfs at DIR (pulling it first if needed); nosuid,nodev unless --allow-suid-dev')
    .argument('<ref>', 'composite tag or full reference')
    .argument('<dir>', 'mount point (created if missing)')
    .option('--allow-overlap', 'allow package layers that write the same path (manifest order wins)')
    .option('--allow-suid-dev', 'let setuid files and device nodes of the image work in the view (anyone who can reach DIR could then run them)')
    .option('--json', 'print what was mounted as JSON')
    .addOption(keepBlobsOption())
    .action(
      action(async (input: string, dir: string, opts: { allowOverlap?: boolean; allowSuidDev?: boolean; json?: boolean; keepBlobs?: boolean }, cmd: Command) => {
        const { mountImage } = await import('../../container/index.js');
        await withHost(globalOptions(cmd), async (host) => {
          const r = await mountImage({ ...host, keepBlobs: opts.keepBlobs ?? false }, host.resolve(input), dir, { allowOverlap: opts.allowOverlap ?? false, allowSuidDev: opts.allowSuidDev ?? false });
          if (opts.json) {
            return printJson({ mountPoint: r.mountPoint, reference: r.pull.reference, manifestDigest: r.pull.manifestDigest, layers: r.plan.layers.map((l) => l.diffId), mount: r.plan.mount, mountMs: r.mountMs, pull: r.pull });
          }
          process.stdout.write(`mounted ${r.pull.reference} at ${r.mountPoint} (${r.plan.layers.length} layers, ${r.plan.mount.type === 'overlay' ? r.plan.mount.mode : 'bind'}, ${formatMs(r.mountMs)})\n`);
        });
      }),
    );
  program
    .command('umount')
    .description('unmount a rootfs mounted with hostpull mount')
    .argument('<dir>', 'mount point')
    .action(
      action(async (dir: string, _opts: unknown, cmd: Command) => {
        const { unmountImage } = await import('../../container/index.js');
        await withHost(globalOptions(cmd), async ({ store }) => {
          const target = await unmountImage(store, dir);
          process.stdout.write(`unmounted ${target}\n`);
        });
      }),
    );
}
