/**
 * Prefetch lists shared across composites, through real parts (CNCF registry as the upstream,
 * `hostpull serve`, FUSE, overlayfs, runc): a layer is the same blob in every composite, so what
 * one composite's first start read of it is where a new composite with that layer starts.
 */
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../helpers/cli.js';
import { startLazyEnv, type LazyEnv } from './lazy-env.js';

let env: LazyEnv;

beforeAll(async () => {
  env = await startLazyEnv({ 'TOOLA1.0': 2 * 1024 * 1024, 'TOOLB1.0': 1024 * 1024 });
}, 240_000);

afterAll(async () => {
  await env?.close();
});

async function compositeDigest(ref: string): Promise<string> {
  const r = await runCli(['--root', join(env.work, 'inspector'), '--server', env.serverHost, 'inspect', '--remote', ref]);
  expect(r.code, r.stderr).toBe(0);
  return (JSON.parse(r.stdout) as { digest: string }).digest;
}

/** What the server answers for a composite's prefetch list. */
async function served(composite: string): Promise<{ status: number; body: unknown }> {
  const res = await fetch(`http://${env.serverHost}/hostpull/v1/prefetch/${composite}`);
  return { status: res.status, body: res.ok ? await res.json() : await res.text() };
}

/** The spans of `layer` that node `root` learned from the first start of `composite`. */
function learned(root: string, composite: string, layer: string): number[] {
  const db = new Database(join(root, 'hostpull.db'), { readonly: true });
  try {
    const row = db.prepare('SELECT spans FROM prefetch_lists WHERE image = ? AND blob_digest = ?').get(composite, layer) as { spans: string } | undefined;
    return row ? (JSON.parse(row.spans) as number[]) : [];
  } finally {
    db.close();
  }
}

const started = (stderr: string, layer: string) => new RegExp(`^hostpull-lazy: info: learned prefetch started layer=\\S*${layer} prefetch=(\\d+)$`, 'm').exec(stderr)?.[1];

describe('prefetch lists derived from other composites', () => {
  it("a composite nobody has started gets, per layer, what another composite's first start read of it; its own first start then stores its own list", async () => {
    const toolA = env.published.get('TOOLA1.0')!.layerDigest;
    const toolB = env.published.get('TOOLB1.0')!.layerDigest;
    const [aAlone, bAlone, both] = [await compositeDigest('TOOLA1.0'), await compositeDigest('TOOLB1.0'), await compositeDigest('TOOLA1.0-TOOLB1.0')];
    // Nothing learned anywhere yet: nothing to derive from.
    const none = await served(both);
    expect(none.status).toBe(404);
    expect(none.body).toContain('nor for any of its layers');

    // Node 1 starts TOOLA1.0: what its first start read of TOOLA's layer is learned and offered.
    const node1 = join(env.work, 'node1');
    const first = await runCli(['--root', node1, '--server', env.serverHost, 'run', '--lazy', 'TOOLA1.0', '--', 'toola']);
    expect(first.code, first.stderr).toBe(0);
    const spansA = learned(node1, aAlone, toolA);
    expect(spansA.length).toBeGreaterThan(0);

    // TOOLA1.0-TOOLB1.0, never started: TOOLA's spans from TOOLA1.0's start, nothing for TOOLB.
    expect(await served(both)).toEqual({ status: 200, body: { version: 1, layers: { [toolA]: spansA }, derived: true } });
    expect((await served(bAlone)).status).toBe(404);

    // Node 2 is the first to start TOOLA1.0-TOOLB1.0: it fetches TOOLA's learned spans first.
    const node2 = join(env.work, 'node2');
    const second = await runCli(['--root', node2, '--server', env.serverHost, '--log-level', 'info', 'run', '--lazy', 'TOOLA1.0-TOOLB1.0', '--', '/bin/sh', '-c', 'toola; toolb']);
    expect(second.code, second.stderr).toBe(0);
    expect(second.stdout).toBe('toola says hi\ntoola small file\ntoolb says hi\ntoolb small file\n');
    expect(started(second.stderr, toolA)).toBe(String(spansA.length));
    expect(started(second.stderr, toolB)).toBeUndefined();

    // What that start read becomes the composite's own list (no longer derived), and TOOLB's layer
    // has a list now: TOOLB1.0, never started, is answered from it.
    const own = { [toolA]: learned(node2, both, toolA), [toolB]: learned(node2, both, toolB) };
    expect(own[toolB]!.length).toBeGreaterThan(0);
    expect(await served(both)).toEqual({ status: 200, body: { version: 1, layers: own } });
    expect(await served(bAlone)).toEqual({ status: 200, body: { version: 1, layers: { [toolB]: own[toolB] }, derived: true } });
    // TOOLA's layer keeps the first list stored with it in, TOOLA1.0's.
    expect(await served(aAlone)).toEqual({ status: 200, body: { version: 1, layers: { [toolA]: spansA } } });
  }, 180_000);
});
