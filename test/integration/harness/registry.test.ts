import { describe, expect, it } from 'vitest';
import { blobRequests, startRegistry, useRegistry } from '../../helpers/registry.js';
import { buildLayer, pushBlob } from '../../helpers/fixtures.js';

describe('test registry (docker-registry 2.8)', () => {
  const registry = useRegistry();

  it('answers GET /v2/ and logs requests with exact body byte counts', async () => {
    const reg = registry();
    expect(reg.url).toBe(`http://${reg.host}`);
    expect(reg.host).toMatch(/^127\.0\.0\.1:\d+$/);
    const layer = buildLayer([{ path: '/data/a.txt', content: 'x'.repeat(10_000) }]);
    await pushBlob(reg.url, 'harness/blob', layer.digest, layer.blob);

    const mark = await reg.mark();
    const res = await fetch(`${reg.url}/v2/harness/blob/blobs/${layer.digest}`);
    const body = Buffer.from(await res.arrayBuffer());
    expect(res.status).toBe(200);
    expect(body.equals(layer.blob)).toBe(true);
    const head = await fetch(`${reg.url}/v2/harness/blob/blobs/${layer.digest}`, { method: 'HEAD' });
    await head.arrayBuffer();

    const entries = await reg.since(mark);
    expect(entries).toEqual([
      { method: 'GET', path: `/v2/harness/blob/blobs/${layer.digest}`, status: 200, bytes: layer.size },
      { method: 'HEAD', path: `/v2/harness/blob/blobs/${layer.digest}`, status: 200, bytes: 0 },
    ]);
    expect(blobRequests(entries)).toEqual([entries[0]]);
    // The flush sentinel never shows up, and marks are stable when nothing happens.
    expect(await reg.mark()).toBe(mark + 2);
    expect(await reg.since(mark + 2)).toEqual([]);
  });

  it('counts a Range request by the bytes actually served', async () => {
    const reg = registry();
    const layer = buildLayer([{ path: '/data/b.bin', content: Buffer.alloc(5000, 7) }], { compression: 'none' });
    await pushBlob(reg.url, 'harness/range', layer.digest, layer.blob);
    const mark = await reg.mark();
    const res = await fetch(`${reg.url}/v2/harness/range/blobs/${layer.digest}`, { headers: { range: 'bytes=100-' } });
    const body = Buffer.from(await res.arrayBuffer());
    expect(res.status).toBe(206);
    expect(body.equals(layer.blob.subarray(100))).toBe(true);
    const entries = blobRequests(await reg.since(mark));
    expect(entries.map((e) => [e.status, e.bytes])).toEqual([[206, layer.size - 100]]);
  });

  it('stop() ends the process and removes its directory', async () => {
    const reg = await startRegistry();
    const { existsSync } = await import('node:fs');
    expect(existsSync(reg.dir)).toBe(true);
    await reg.stop();
    expect(existsSync(reg.dir)).toBe(false);
    expect(() => process.kill(reg.pid, 0)).toThrow();
    await expect(fetch(`${reg.url}/v2/`)).rejects.toThrow();
    await reg.stop(); // idempotent
  });
});

describe('htpasswd registry', () => {
  const registry = useRegistry({ htpasswd: { user: 'alice', password: 's3cret' } });

  it('answers 401 without credentials, 200 with them, 401 with wrong ones', async () => {
    const reg = registry();
    const none = await fetch(`${reg.url}/v2/`);
    await none.arrayBuffer();
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toMatch(/^Basic realm=/);
    const ok = await fetch(`${reg.url}/v2/`, { headers: { authorization: `Basic ${Buffer.from('alice:s3cret').toString('base64')}` } });
    await ok.arrayBuffer();
    expect(ok.status).toBe(200);
    const bad = await fetch(`${reg.url}/v2/`, { headers: { authorization: `Basic ${Buffer.from('alice:nope').toString('base64')}` } });
    await bad.arrayBuffer();
    expect(bad.status).toBe(401);
    const log = await reg.accessLog();
    expect(log.filter((e) => e.path === '/v2/').map((e) => e.status)).toEqual(expect.arrayContaining([401, 200]));
  });
});

describe('token-auth registry', () => {
  it('challenges with the configured realm and service', async () => {
    const { makeTempDir, removeTempDir } = await import('../../helpers/tmp.js');
    const { spawnSync } = await import('node:child_process');
    const dir = await makeTempDir('token-cert');
    let reg: Awaited<ReturnType<typeof startRegistry>> | undefined;
    try {
      const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1',
        '-subj', '/CN=hostpull-test-token', '-keyout', `${dir}/key.pem`, '-out', `${dir}/cert.pem`], { encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
      reg = await startRegistry({
        tokenAuth: { realm: 'http://127.0.0.1:1/token', service: 'hostpull-test', issuer: 'hostpull-test-issuer', rootCertBundle: `${dir}/cert.pem` },
      });
      const res = await fetch(`${reg.url}/v2/`);
      await res.arrayBuffer();
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toBe('Bearer realm="http://127.0.0.1:1/token",service="hostpull-test"');
    } finally {
      await reg?.stop();
      await removeTempDir(dir);
    }
  });
});
