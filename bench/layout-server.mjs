// The benchmarks' one way to start `hostpull serve` over an OCI layout holding the demo's base, with a
// fresh write token: both lazy benchmarks publish the demo's packages into it and pull through it.
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Starts the server on a free 127.0.0.1 port and resolves once it prints the URL it serves.
 * `stderr` is where its log goes (a stdio value: 'inherit', or an fd). The caller kills `server`.
 * With `link` (shaped-link.mjs) it runs inside that network namespace, on its address.
 */
export async function startLayoutServer({ cli, work, layout, logLevel, stderr, link }) {
  const token = join(work, 'token');
  writeFileSync(token, `${'b'.repeat(32)}\n`, { mode: 0o600 });
  const listen = link ? `${link.nsAddr}:0` : '127.0.0.1:0';
  const args = [cli, '--root', join(work, 'server'), '--log-level', logLevel, 'serve', '--listen', listen, '--layout', layout, '--base', 'base/bookworm-slim:demo', '--token-file', token];
  // `ip netns exec` execs the command: the pid is the server's own, for the caller's kill.
  const [cmd, argv] = link ? ['ip', ['netns', 'exec', link.ns, process.execPath, ...args]] : [process.execPath, args];
  const server = spawn(cmd, argv, { stdio: ['ignore', 'pipe', stderr] });
  const url = await new Promise((resolve, reject) => {
    let out = '';
    server.stdout.on('data', (b) => {
      out += b;
      const m = /serving (http:\/\/\S+)/.exec(out);
      if (m) resolve(m[1]);
    });
    server.once('exit', (c) => reject(new Error(`hostpull serve exited ${c} before serving`)));
  });
  return { server, url, token };
}
