import type { Command } from 'commander';
import { action, EXIT_FAILURE, globalOptions } from '../context.js';
import { printJson } from '../format.js';
import { withHost } from '../host.js';

export function registerVerifyCommand(program: Command): void {
  program
    .command('verify')
    .description('check every blob and unpacked layer of the store against its digest (or the checksum recorded at unpack)')
    .option('--repair', 'quarantine what is corrupt, so the next pull or run fetches and unpacks it again')
    .option('--json', 'print the report as JSON')
    .addHelpText('after', '\nExit status 1 when something is wrong and was not repaired.\n')
    .action(
      action(async (opts: { repair?: boolean; json?: boolean }, cmd: Command) => {
        const { verifyStore } = await import('../../store/index.js');
        return withHost(globalOptions(cmd), async ({ store }) => {
          const r = await verifyStore(store, { repair: opts.repair ?? false });
          const unrepaired = r.problems.filter((p) => !p.repaired).length;
          if (opts.json) {
            printJson(r);
          } else {
            for (const p of r.problems) {
              process.stdout.write(`${p.kind} ${p.id}: ${p.problem}${p.repaired ? ` — repaired: quarantined${p.quarantinedTo ? ` to ${p.quarantinedTo}` : ''}, the next pull fetches it again` : ''}\n`);
            }
            const repaired = r.problems.length - unrepaired;
            process.stdout.write(
              `checked ${r.blobsChecked} blobs and ${r.layersChecked} layers: ${r.problems.length === 0 ? 'all intact' : `${r.problems.length} corrupt, ${repaired} repaired`}` +
                `${r.quarantinePurged > 0 ? `; removed ${r.quarantinePurged} earlier quarantined item(s)` : ''}\n`,
            );
            if (unrepaired > 0) process.stdout.write('run `hostpull verify --repair` to quarantine them\n');
          }
          return unrepaired > 0 ? EXIT_FAILURE : undefined;
        });
      }),
    );
}
