/**
 * DESIGN §2 "The trust boundary", through the real parts: `hostpull serve` over an OCI layout and
 * over a CNCF docker-registry, and a node (the built CLI, as root) pulling and running composites.
 *
 * Each hostile package is offered twice: to registration (which must refuse it), and to the node
 * through a server with a static catalog (which never checks at registration), where the node must
 * refuse it on its own — where the layer lands, from the composite's layer annotations.
 */
import { createHash } from 'node:crypto';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type RunningServer } from '../../../src/server/serve.js';
import { runCli, type CliResult } from '../../helpers/cli.js';
import { baseFiles, buildLayer } from '../../helpers/fixtures.js';
import { HOSTILE, packageLayer } from '../../helpers/hostile-packages.js';
import { makeTempDir, removeTempDir } from '../../helpers/tmp.js';
import { treeSnapshot } from '../../helpers/tree-snapshot.js';
import { pushImageTo, upstreamFactories, type TestUpstream } from '../server/upstreams.js';

const TOKEN = 'claims-test-token-0123456789';

describe.each(upstreamFactories)('package claims over $name', (factory) => {
  let up: TestUpstream;
  let work: string;
  let registering: RunningServer;
  /** Serves a static catalog: no check at registration, so only the node stands in the way. */
  let unchecked: RunningServer;
  let store: string;
  const passwdBefore = createHash('sha256');

  const register = (code: string, body: Record<string, unknown>) =>
    fetch(`${registering.url}/hostpull/v1/catalog/${code}`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` },
      body: JSON.stringify(body),
    });
  const node = (server: RunningServer, args: string[]): Promise<CliResult> => runCli(['--root', store, '--server', server.host, ...args], { timeoutMs: 120_000 });

  beforeAll(async () => {
    up = await factory.start();
    work = await makeTempDir('claims');
    store = join(work, 'store');
    passwdBefore.update(await readFile('/etc/passwd'));
    await pushImageTo(up.upstream, 'pkg/base', 'latest', [buildLayer(baseFiles())], { cmd: ['/bin/sh'] });
    const catalog: Record<string, unknown> = {};
    for (const h of HOSTILE) {
      const repo = `pkg/${h.code.toLowerCase().replace(/\./g, '')}`;
      await pushImageTo(up.upstream, repo, 'v1', [h.layer]);
      catalog[h.code] = { image: `${repo}:v1`, prefix: h.prefix };
    }
    await writeFile(join(work, 'catalog.json'), JSON.stringify({ entries: catalog }));
    await writeFile(join(work, 'token'), TOKEN);
    registering = await startServer({ ...up.serverOptions, port: 0, base: 'pkg/base:latest', tokenFile: join(work, 'token'), cacheTtlMs: 200 });
    unchecked = await startServer({ ...up.serverOptions, port: 0, base: 'pkg/base:latest', catalogFile: join(work, 'catalog.json'), cacheTtlMs: 200 });
  });

  afterAll(async () => {
    await registering?.close();
    await unchecked?.close();
    await up?.stop();
    if (work) await removeTempDir(work);
    // Nothing a hostile layer did reached the host's own tree.
    expect(createHash('sha256').update(await readFile('/etc/passwd')).digest('hex')).toBe(passwdBefore.digest('hex'));
  });

  it.each(HOSTILE.map((h) => [h.rule, h.code, h] as const))('%s (%s): refused at registration, and by the node on pull and run', async (_rule, _code, h) => {
    const repo = `pkg/${h.code.toLowerCase().replace(/\./g, '')}`;
    const res = await register(h.code, { image: `${repo}:v1`, prefix: h.prefix });
    expect(res.status).toBe(400);
    const body = (await res.json()) as { errors: Array<{ message: string; detail: { rule: string; archiveCode: string } }> };
    expect(body.errors[0]!.detail).toMatchObject({ rule: h.rule, archiveCode: 'LAYER_UNSAFE' });
    expect(body.errors[0]!.message).toMatch(h.message);

    const before = await treeSnapshot(work).catch(() => []);
    const pull = await node(unchecked, ['pull', '--no-daemon', h.code]);
    expect(pull.code, pull.stderr).toBe(1);
    expect(pull.stderr).toMatch(h.message);
    const run = await node(unchecked, ['run', h.code, '--', '/bin/true']);
    expect(run.code, run.stderr).toBe(1);
    expect(run.stderr).toMatch(h.message);
    // Only the store's bookkeeping moved (pull records, cached blobs): no layer was committed,
    // nothing was left half-unpacked, nothing outside the store changed.
    const layers = (await readdir(join(store, 'layers'))).filter((n) => n !== '1');
    expect(layers).toEqual([]);
    const outside = (s: string[]) => s.filter((l) => !l.startsWith(`${store}/`) && !l.startsWith(`${store} `));
    expect(outside(await treeSnapshot(work))).toEqual(outside(before));
  });

  it('a layer unpacked earlier as a base layer is held to a later package claim from the store record, without unpacking it again', async () => {
    const hostile = HOSTILE[0]!;
    const repo = 'pkg/plain-image';
    // An ordinary image may carry the layer anywhere: its layers are base layers.
    await pushImageTo(up.upstream, repo, 'v1', [buildLayer(baseFiles()), hostile.layer], { cmd: ['/bin/sh'] });
    const plain = await node(registering, ['pull', '--no-daemon', `${registering.host}/${repo}:v1`]);
    expect(plain.code, plain.stderr).toBe(0);
    const layersBefore = (await readdir(join(store, 'layers'))).sort();

    const pull = await node(unchecked, ['pull', '--no-daemon', hostile.code]);
    expect(pull.code).toBe(1);
    expect(pull.stderr).toMatch(/unpacked earlier under another image\) writes outside \/opt\/out-1\.0/);
    expect((await readdir(join(store, 'layers'))).sort()).toEqual(layersBefore);
  });

  it('--allow-setuid: registered, pulled, shown by inspect, and run', async () => {
    const layer = packageLayer('/opt/sok-1.0', [{ name: 'opt/sok-1.0/bin/su', type: 'file', mode: 0o4755, content: '#!/bin/sh\necho su\n' }]);
    await pushImageTo(up.upstream, 'pkg/sok', 'v1', [layer]);
    expect((await register('SOK1.0', { image: 'pkg/sok:v1', prefix: '/opt/sok-1.0' })).status).toBe(400);
    expect((await register('SOK1.0', { image: 'pkg/sok:v1', prefix: '/opt/sok-1.0', allowSetuid: true })).status).toBe(201);
    const pull = await node(registering, ['pull', '--no-daemon', 'SOK1.0']);
    expect(pull.code, pull.stderr).toBe(0);
    const inspect = await node(registering, ['inspect', 'SOK1.0']);
    expect(inspect.code, inspect.stderr).toBe(0);
    const layers = (JSON.parse(inspect.stdout) as { layers: Array<Record<string, unknown>> }).layers;
    expect(layers[0]).toMatchObject({ role: 'base' });
    expect(layers[1]).toMatchObject({ role: 'package', codeName: 'SOK1.0', prefix: '/opt/sok-1.0', allowSetuid: true, setuid: ['/opt/sok-1.0/bin/su'], capabilities: [] });
    const run = await node(registering, ['run', 'SOK1.0', '--', '/bin/stat', '-c', '%A', '/opt/sok-1.0/bin/su']);
    expect(run.stdout.trim()).toBe('-rwsr-xr-x');
  });

  it('a moved package tag changes nothing on the node until the code name is registered again, and that is checked', async () => {
    await pushImageTo(up.upstream, 'pkg/mvd', 'v', [packageLayer('/opt/mvd-1.0', [{ name: 'opt/mvd-1.0/VERSION', type: 'file', content: 'one\n' }])]);
    expect((await register('MVD1.0', { image: 'pkg/mvd:v', prefix: '/opt/mvd-1.0' })).status).toBe(201);
    const first = await node(registering, ['run', 'MVD1.0', '--', '/bin/cat', '/opt/mvd-1.0/VERSION']);
    expect(first.stdout, first.stderr).toBe('one\n');
    // The provider (or whoever holds the upstream's credentials) moves the tag to a hostile layer.
    await pushImageTo(up.upstream, 'pkg/mvd', 'v', [packageLayer('/opt/mvd-1.0', [{ name: 'opt/mvd-1.0/VERSION', type: 'file', content: 'two\n' }, { name: 'etc/passwd', type: 'file', content: 'x\n' }])]);
    await new Promise((r) => setTimeout(r, 400)); // past the server's cache TTL
    const second = await node(registering, ['run', 'MVD1.0', '--', '/bin/cat', '/opt/mvd-1.0/VERSION']);
    expect(second.stdout, second.stderr).toBe('one\n');
    const again = await register('MVD1.0', { image: 'pkg/mvd:v', prefix: '/opt/mvd-1.0' });
    expect(again.status).toBe(400);
    expect(await again.text()).toMatch(/outside the package's prefix/);
  });
});
