import fs from 'node:fs';
import { PassThrough } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it, vi } from 'vitest';
import { progressRenderer } from '../../../src/cli/progress.js';
import { createLogger } from '../../../src/log.js';

/** A stream that says it is a terminal, and what was written to it. */
function fakeTerminal(): { stream: NodeJS.WriteStream; text: () => string } {
  const stream = Object.assign(new PassThrough(), { isTTY: true, columns: 120, rows: 40 });
  let out = '';
  stream.on('data', (chunk: Buffer) => (out += chunk.toString()));
  return { stream: stream as unknown as NodeJS.WriteStream, text: () => out };
}

const count = (text: string, line: string) => text.split(line).length - 1;
const digest = `sha256:${'ab'.repeat(32)}` as const;

describe('progress bars: lines said while a pull runs', () => {
  it('are written at once before the first bar, and each exactly once around the bars', async () => {
    const t = fakeTerminal();
    const progress = progressRenderer(t.stream);
    progress.say('before any bar');
    expect(t.text()).toContain('before any bar\n');

    progress.onEvent({ type: 'layer-start', digest, size: 1000, resumeFrom: 0 });
    progress.say('while the bars are drawn');
    await sleep(300); // a redraw or more
    progress.say('just before the end');
    progress.stop();
    progress.stop(); // pull-and-print stops twice (try, then finally)
    progress.say('after the bars');

    const text = t.text();
    for (const line of ['before any bar', 'while the bars are drawn', 'just before the end', 'after the bars']) expect(count(text, `${line}\n`)).toBe(1);
    expect(text.indexOf('while the bars are drawn')).toBeLessThan(text.indexOf('just before the end'));
  });
});

describe('progress bars: log lines', () => {
  it('a text warning logged while the bars are drawn is written once, by the bars, and after them stderr has it back', async () => {
    const t = fakeTerminal();
    const logger = createLogger('warn', 'hostpull', 'text');
    // The logger writes to fd 2 itself (pino's synchronous destination): what it hands fs.writeSync.
    const writeSync = fs.writeSync;
    const written: string[] = [];
    const stderr = vi.spyOn(fs, 'writeSync').mockImplementation(((fd: number, data: string | NodeJS.ArrayBufferView, ...rest: never[]) => {
      if (fd !== 2) return writeSync(fd, data as string, ...rest);
      written.push(String(data));
      return Buffer.byteLength(String(data));
    }) as typeof fs.writeSync);
    try {
      const progress = progressRenderer(t.stream);
      progress.onEvent({ type: 'layer-start', digest, size: 1000, resumeFrom: 0 });
      logger.warn({ registry: 'reg:5000' }, 'registry reg:5000 failed; retrying');
      await sleep(300); // a redraw or more
      progress.stop();
      expect(count(t.text(), 'hostpull: warning: registry reg:5000 failed; retrying registry=reg:5000\n')).toBe(1);
      expect(written).toEqual([]);

      logger.warn('after the bars');
      expect(written).toEqual(['hostpull: warning: after the bars\n']);
      expect(t.text()).not.toContain('after the bars');
    } finally {
      stderr.mockRestore();
    }
  });
});
