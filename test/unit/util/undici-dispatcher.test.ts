/**
 * undici's Agent, loaded without the package entry (fetch, WebSocket, the cache and the mock
 * agents: ~60 ms of CPU on every command that talks to a registry).
 * Checked in a fresh process, where nothing else has loaded undici, on the built module.
 */
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../../helpers/cli.js';

const PROBE = `
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import { loadDispatcherClass } from ${JSON.stringify(`${REPO_ROOT}/dist/util/undici-dispatcher.js`)};
const server = createServer((req, res) => res.end(req.method + ' ' + req.url));
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const Agent = await loadDispatcherClass('Agent');
const agent = new Agent();
const res = await agent.request({ origin: 'http://127.0.0.1:' + server.address().port, method: 'GET', path: '/v2/' });
const body = await res.body.text();
await agent.close();
server.close();
const loaded = Object.keys(createRequire(import.meta.url).cache).filter((k) => k.includes('/node_modules/undici/'));
console.log(JSON.stringify({ status: res.statusCode, body, entry: loaded.some((k) => k.endsWith('/node_modules/undici/index.js')), fetch: loaded.some((k) => k.includes('/lib/web/fetch/')) }));
`;

describe('loadDispatcherClass', () => {
  it('gives a working Agent without loading the package entry or fetch', () => {
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', PROBE], { encoding: 'utf8', timeout: 30_000 });
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toEqual({ status: 200, body: 'GET /v2/', entry: false, fetch: false });
  });
});
