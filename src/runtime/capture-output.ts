import type { ChildProcess } from 'node:child_process';

/** How much of a container's stdout and of its stderr a piped run keeps: the last 4 MiB of each. */
const MAX_CAPTURE = 4 * 1024 * 1024;

export interface CapturedOutput {
  stdout(): string;
  stderr(): string;
}

/**
 * Collects a piped child's stdout and stderr, keeping the tail of each (the end of a long output
 * is where an error is), and gives it `input` on stdin, then EOF.
 */
export function captureOutput(child: ChildProcess, input: string | Uint8Array = ''): CapturedOutput {
  // A running total: a container printing many small lines must not make each chunk cost a pass
  // over all the chunks kept so far.
  const keepTail = (chunks: Buffer[]) => {
    let total = 0;
    return (b: Buffer) => {
      chunks.push(b);
      total += b.length;
      while (total > MAX_CAPTURE && chunks.length > 1) total -= chunks.shift()!.length;
    };
  };
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout!.on('data', keepTail(out));
  child.stderr!.on('data', keepTail(err));
  // EPIPE when the container exits without reading: not our error.
  child.stdin!.on('error', () => undefined);
  child.stdin!.end(input);
  return { stdout: () => Buffer.concat(out).toString('utf8'), stderr: () => Buffer.concat(err).toString('utf8') };
}
