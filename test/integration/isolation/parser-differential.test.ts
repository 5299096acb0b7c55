/**
 * One reader, one verdict: every archive of the parser-differential corpus (tars that readers
 * disagree about) is refused by the server's registration check and by a node's unpack with the
 * same error — code, rule, entry and tar offset — and nothing outside the layer changes.
 *
 * The node gets each layer from a server with a static catalog (no registration check), so its
 * own unpack is what stands in the way.
 */
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isHostpullError, type HostpullError } from '../../../src/errors.js';
import { silentLogger } from '../../../src/log.js';
import { Puller } from '../../../src/pull/puller.js';
import { RegistryClient } from '../../../src/registry/index.js';
import { startServer, type RunningServer } from '../../../src/server/serve.js';
import { ContentStore } from '../../../src/store/content-store.js';
import { DIFF_PREFIX, DIFFERENTIAL_CASES } from '../../helpers/differential-corpus.js';
import { layerFromTar } from '../../helpers/fixtures.js';
import { startRegistry, type TestRegistry } from '../../helpers/registry.js';
import { makeTempDir, removeTempDir } from '../../helpers/tmp.js';
import { treeSnapshot } from '../../helpers/tree-snapshot.js';
import { pushImageTo } from '../server/upstreams.js';
import { RegistryUpstream } from '../../../src/server/registry-upstream.js';

const TOKEN = 'differential-token-0123456789';

let registry: TestRegistry;
let upstream: RegistryUpstream;
let work: string;
let registering: RunningServer;
let unchecked: RunningServer;
let store: ContentStore;
let client: RegistryClient;

const codeOf = (id: string) => `DIFF_${id.replace(/-/g, '_').toUpperCase()}`;

/** The archive error behind a pull failure (the pipeline wraps it, keeping code and details). */
function archiveCause(err: unknown): HostpullError | undefined {
  for (let e: unknown = err; e !== undefined; e = (e as { cause?: unknown }).cause) {
    if (isHostpullError(e) && typeof e.details?.rule === 'string') return e;
  }
  return undefined;
}


/** `entry "x": reason (tar offset N)`: a refusal without the name of where it was read. */
function tail(message: string): string {
  return /layer (?:\S+): (.*)$/.exec(message)?.[1] ?? message;
}

beforeAll(async () => {
  registry = await startRegistry();
  upstream = new RegistryUpstream({ url: registry.url });
  work = await makeTempDir('differential');
  const catalog: Record<string, unknown> = {};
  for (const c of DIFFERENTIAL_CASES) {
    await pushImageTo(upstream, 'pkg/diff', c.id, [layerFromTar(c.tar)]);
    catalog[codeOf(c.id)] = { image: `pkg/diff:${c.id}`, prefix: DIFF_PREFIX };
  }
  await writeFile(join(work, 'catalog.json'), JSON.stringify({ entries: catalog }));
  await writeFile(join(work, 'token'), TOKEN);
  registering = await startServer({ upstream: registry.url, port: 0, tokenFile: join(work, 'token') });
  unchecked = await startServer({ upstream: registry.url, port: 0, catalogFile: join(work, 'catalog.json') });
  // A sentinel tree beside the node's store: what an escaping write would hit first.
  await mkdir(join(work, 'sentinel', 'etc'), { recursive: true });
  await writeFile(join(work, 'sentinel', 'etc', 'passwd'), 'root:x:0:0::/root:/bin/sh\n');
  store = await ContentStore.open(join(work, 'store'));
  client = new RegistryClient({ logger: silentLogger() });
});

afterAll(async () => {
  store?.close();
  await client?.close();
  await registering?.close();
  await unchecked?.close();
  await upstream?.close();
  await registry?.stop();
  if (work) await removeTempDir(work);
});

describe('parser-differential archives', () => {
  it.each(DIFFERENTIAL_CASES.map((c) => [c.id, c] as const))('%s: refused identically by registration and by the node', async (_id, c) => {
    const res = await fetch(`${registering.url}/hostpull/v1/catalog/${codeOf(c.id)}`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` },
      body: JSON.stringify({ image: `pkg/diff:${c.id}`, prefix: DIFF_PREFIX }),
    });
    expect(res.status, c.what).toBe(400);
    const refused = ((await res.json()) as { errors: Array<{ message: string; detail: Record<string, unknown> }> }).errors[0]!;
    expect(refused.detail).toMatchObject({ archiveCode: 'LAYER_AMBIGUOUS', rule: c.rule });

    const sentinel = await treeSnapshot(join(work, 'sentinel'));
    const passwd = await readFile('/etc/passwd');
    const err = await new Puller({ store, client, logger: silentLogger() })
      .pull({ registry: unchecked.host, repository: 'hostpull', tag: codeOf(c.id) })
      .then(() => undefined, (e: unknown) => e);
    const cause = archiveCause(err);
    expect(cause, `${c.what}: ${String(err)}`).toBeDefined();
    // The same error: code, rule, entry, offset, and the same words after where it was read.
    expect(cause!.code).toBe(refused.detail.archiveCode);
    expect(cause!.details).toMatchObject({ rule: refused.detail.rule, ...(refused.detail.entry !== undefined ? { entry: refused.detail.entry } : {}) });
    expect(tail(cause!.message)).toBe(tail(refused.message));

    expect(await treeSnapshot(join(work, 'sentinel'))).toEqual(sentinel);
    expect(await readFile('/etc/passwd')).toEqual(passwd);
    expect(store.layers.list()).toEqual([]);
    expect((await readdir(store.layout.layersDir)).filter((n) => n.startsWith('staging-'))).toEqual([]);
  });
});
