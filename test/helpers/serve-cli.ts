import type { ChildProcess } from 'node:child_process';
import { HostpullError } from '../../src/errors.js';
import { spawnCli } from './cli.js';

/**
 * Starts `hostpull serve` (args after `serve`, listening on 127.0.0.1:0) and resolves with the URL
 * it prints; a server that exits or does not answer in 30 s fails with what it wrote.
 */
export async function spawnServe(globalArgs: string[], serveArgs: string[]): Promise<{ child: ChildProcess; url: string }> {
  const child = spawnCli([...globalArgs, 'serve', '--listen', '127.0.0.1:0', ...serveArgs]);
  child.stdin?.end();
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new HostpullError('TEST_SERVE_START', `hostpull serve did not start: ${out}`)), 30_000);
    child.stdout!.on('data', (b: Buffer) => {
      out += b.toString();
      const m = /serving (http:\/\/\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    child.stderr?.on('data', (b: Buffer) => (out += b.toString()));
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new HostpullError('TEST_SERVE_START', `hostpull serve exited ${code}: ${out}`));
    });
  });
  return { child, url };
}
