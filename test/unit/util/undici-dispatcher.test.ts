/**
 * undici's Agent and Client, loaded without the package entry (fetch, WebSocket, the cache and
 * the mock agents: ~60 ms of CPU on every command that talks to a registry or to the daemon).
 * Checked in a fresh process, where nothing else has loaded undici, on the built module.
 */
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../../helpers/cli.js';

const PROBE = `
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { loadDispatcherClass } from ${JSON.stringify(`${REPO_ROOT}/dist/util/undici-dispatcher.js`)};
const dir = mkdtempSync(join(tmpdir(), 'undici-dispatcher-'));
const socketPath = join(dir, 'sock');
const server = createServer((req, res) => res.end(req.method + ' ' + req.url));
await new Promise((r) => server.listen(socketPath, r));
const Client = await loadDispatcherClass('Client');
const Agent = await loadDispatcherClass('Agent');
const client = new Client('http://x', { socketPath });
const res = await client.request({ method: 'GET', path: '/v1/health' });
const body = await res.body.text();
await client.close();
const agent = new Agent();
await agent.close();
server.close();
rmSync(dir, { recursive: true });
const loaded = Object.keys(createRequire(import.meta.url).cache).filter((k) => k.includes('/node_modules/undici/'));
console.log(JSON.stringify({ status: res.statusCode, body, entry: loaded.some((k) => k.endsWith('/node_modules/undici/index.js')), fetch: loaded.some((k) => k.includes('/lib/web/fetch/')) }));
`;

describe('loadDispatcherClass', () => {
  it('gives a working Client (over a unix socket) and Agent, without loading the package entry or fetch', () => {
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', PROBE], { encoding: 'utf8', timeout: 30_000 });
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toEqual({ status: 200, body: 'GET /v1/health', entry: false, fetch: false });
  });
});
