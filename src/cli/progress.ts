import type cliProgressModule from 'cli-progress';
import { createRequire } from 'node:module';
import { setTextLogWriter } from '../log.js';
import { shortDigest } from '../oci/index.js';
import type { PullEvent } from '../pull/index.js';
import { formatBytes } from './format.js';

/** What a pull shows while it runs: its events, and lines of text said meanwhile. */
export interface PullProgress {
  onEvent: (e: PullEvent) => void;
  /** Writes one line to the stream, above the bars while they are drawn. */
  say: (line: string) => void;
  stop: () => void;
}

/**
 * Progress bars on a TTY (one per layer being fetched), nothing otherwise: a non-TTY gets one
 * summary line at the end from the command itself.
 */
export function progressRenderer(stream: NodeJS.WriteStream = process.stderr): PullProgress {
  if (!stream.isTTY) return quietProgress(stream);
  // Only a TTY needs the bar library; load it then (CommonJS, so require is synchronous).
  const cliProgress = createRequire(import.meta.url)('cli-progress') as typeof cliProgressModule;
  const multi = new cliProgress.MultiBar(
    {
      stream,
      clearOnComplete: false,
      hideCursor: true,
      format: ' {layer} [{bar}] {percentage}% {done}/{total}',
      formatValue: (v, _o, type) => (type === 'value' || type === 'total' ? formatBytes(v) : String(v)),
    },
    cliProgress.Presets.shades_classic,
  );
  const bars = new Map<string, cliProgressModule.SingleBar>();
  // MultiBar.log only queues a line for the next redraw, and redraws run only while bars are
  // drawn: lines said before the first bar are written at once, and those the last redraw did
  // not reach are written after the bars stop.
  let unflushed: string[] = [];
  multi.on('redraw-post', () => (unflushed = []));
  const payload = (digest: string, bytes: number, size: number) => ({ layer: shortDigest(digest), done: formatBytes(bytes), total: formatBytes(size) });
  const say = (line: string): void => {
    if (!multi.isActive) return void stream.write(`${line}\n`);
    unflushed.push(line);
    multi.log(`${line}\n`);
  };
  // A warning logged while the bars are drawn (a registry that starts failing mid-download) is
  // said like any other line: written into a redraw, it would leave a bar drawn twice.
  setTextLogWriter((text) => say(text.replace(/\n$/, '')));
  return {
    onEvent(e) {
      if (e.type === 'layer-start') {
        bars.set(e.digest, multi.create(e.size, e.resumeFrom, payload(e.digest, e.resumeFrom, e.size)));
      } else if (e.type === 'layer-progress') {
        bars.get(e.digest)?.update(e.bytes, payload(e.digest, e.bytes, e.size));
      } else if (e.type === 'layer-done') {
        const bar = bars.get(e.digest);
        if (bar) bar.update(bar.getTotal(), payload(e.digest, bar.getTotal(), bar.getTotal()));
      }
    },
    say,
    stop() {
      // Only bars being drawn need stopping: stopping otherwise (no layer was fetched, or a
      // second time) wrote cursor moves and an empty line.
      if (multi.isActive) multi.stop();
      for (const line of unflushed.splice(0)) stream.write(`${line}\n`);
      setTextLogWriter(undefined);
    },
  };
}

/** No bars (not a TTY, or `--json`): lines go straight to the stream. */
export function quietProgress(stream: NodeJS.WriteStream = process.stderr): PullProgress {
  return { onEvent: () => undefined, say: (line) => stream.write(`${line}\n`), stop: () => undefined };
}
