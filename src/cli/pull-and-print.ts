import type { HostApi } from '../daemon/index.js';
import { shortDigest, type ImageReference } from '../oci/index.js';
import { retryMessage } from '../registry/index.js';
import { formatBytes, formatMs, printJson } from './format.js';
import { withInterrupt } from './interrupt.js';
import { progressRenderer, quietProgress } from './progress.js';
import type { PullEvent } from '../pull/index.js';

/** `pull --concurrency`: its default and its bounds. */
export const PULL_CONCURRENCY = { defaultValue: 4, min: 1, max: 64 } as const;

/** The flags of `hostpull pull` that shape the pull and its output, as parsed. */
export interface PullFlags {
  concurrency: number;
  unpack: boolean;
  keepBlobs?: boolean;
  json?: boolean;
}

/**
 * What `hostpull pull` does once it has a host API, whichever way its command line was read
 * (commands/pull.ts, or daemon-pull.ts for a daemon): progress bars on a TTY, Ctrl-C cancels the
 * pull, then the pull record as JSON or one summary line.
 */
export async function pullAndPrint(api: HostApi, ref: ImageReference, flags: PullFlags): Promise<void> {
  const progress = flags.json ? quietProgress() : progressRenderer();
  const onEvent = (e: PullEvent) => {
    // In-process, the registry client has already logged this retry on our stderr; a daemon
    // logged it in its own log, so its client says it here.
    if (e.type === 'retry' && api.mode === 'daemon') progress.say(retryLine(e));
    progress.onEvent(e);
  };
  try {
    const result = await withInterrupt(({ signal }) =>
      api.pull(ref, { concurrency: flags.concurrency, unpack: flags.unpack, ...(flags.keepBlobs ? { keepBlobs: true } : {}), onEvent, signal }),
    );
    progress.stop();
    if (flags.json) return printJson(result);
    process.stdout.write(
      `${result.upToDate ? 'up to date' : 'pulled'} ${result.reference} ${shortDigest(result.manifestDigest)} in ${formatMs(result.phases.total)}: ` +
        `${result.layers.length} layers, ${result.layerHits} cached, ${result.layerMisses} fetched ` +
        `(${formatBytes(result.bytesFetched)} fetched, ${formatBytes(result.bytesReused)} reused)\n`,
    );
  } finally {
    progress.stop();
  }
}

/** A retry event as a line for the terminal: the daemon's warning, with its error. */
export function retryLine(e: Extract<PullEvent, { type: 'retry' }>): string {
  return `hostpull: ${retryMessage(e)}`;
}
