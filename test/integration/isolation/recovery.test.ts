/**
 * A store that rotted recovers by itself: a corrupt blob or layer is quarantined and fetched (or
 * unpacked) again by the next pull or run, never reported "up to date"; `hostpull verify` finds
 * what is wrong and `--repair` says what it quarantined. Real registry, the built CLI as root.
 */
import { createHash } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, type CliResult } from '../../helpers/cli.js';
import { pushFixtureSet, type FixtureSet } from '../../helpers/fixtures.js';
import { startRegistry, type TestRegistry } from '../../helpers/registry.js';
import { makeTempDir, removeTempDir } from '../../helpers/tmp.js';

let registry: TestRegistry;
let fixtures: FixtureSet;
let work: string;
let root: string;

const IMAGE = 'JDK11.0-GRD7.0';

/**
 * This store keeps its layer blobs (HOSTPULL_KEEP_BLOBS): by default a blob is dropped once its
 * layer is unpacked, and a corrupt blob beneath an unpacked layer could not happen.
 */
function hostpull(args: string[]): Promise<CliResult> {
  return runCli(['--root', root, '--server', registry.host, ...args], { timeoutMs: 120_000, env: { HOSTPULL_KEEP_BLOBS: '1' } });
}

async function pullJson(args: string[] = []): Promise<{ upToDate: boolean; bytesFetched: number; layers: Array<{ unpacked: boolean; fetchedBytes: number }> }> {
  const r = await hostpull(['pull', '--no-daemon', '--json', ...args, IMAGE]);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as never;
}

function blobFile(digest: string): string {
  const hex = digest.slice('sha256:'.length);
  return join(root, 'blobs', 'sha256', hex.slice(0, 2), hex);
}

/** Flips one byte of a file in place (as bit rot or a stray write would). */
async function corrupt(path: string): Promise<void> {
  const bytes = await readFile(path);
  bytes[Math.floor(bytes.length / 2)]! ^= 0xff;
  await writeFile(path, bytes);
}

beforeAll(async () => {
  registry = await startRegistry();
  fixtures = await pushFixtureSet(registry.url, { codes: ['JDK11.0', 'GRD7.0'], composites: [IMAGE], sizes: { 'JDK11.0': 64 * 1024, 'GRD7.0': 64 * 1024 } });
  work = await makeTempDir('recovery');
  root = join(work, 'store');
  expect((await pullJson()).upToDate).toBe(false);
});

afterAll(async () => {
  await registry?.stop();
  if (work) await removeTempDir(work);
});

describe('recovery from a corrupt store', () => {
  it('verify finds nothing wrong in an intact store', async () => {
    const r = await hostpull(['verify']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/checked \d+ blobs and 3 layers: all intact/);
    expect((await pullJson()).upToDate).toBe(true);
  });

  it('a corrupt config blob is quarantined and fetched again by the next run (not "up to date")', async () => {
    const config = fixtures.images[IMAGE]!.configDigest;
    await corrupt(blobFile(config));
    const run = await hostpull(['run', IMAGE, '--', '/bin/cat', '/opt/jdk-11.0/VERSION']);
    expect(run.stdout, run.stderr).toBe('JDK11.0\n');
    expect(createHash('sha256').update(await readFile(blobFile(config))).digest('hex')).toBe(config.slice(7));
    expect((await readdir(join(root, 'quarantine'))).some((n) => n.includes(config.slice(7, 20)))).toBe(true);
  });

  it('a corrupt manifest blob makes the next pull fetch it again', async () => {
    await corrupt(blobFile(fixtures.images[IMAGE]!.manifestDigest));
    const again = await pullJson();
    expect(again.upToDate).toBe(false);
    expect(again.bytesFetched).toBeGreaterThan(0);
    expect((await pullJson()).upToDate).toBe(true);
  });

  it('verify finds a changed file in an unpacked layer; --repair quarantines it and the next pull unpacks it again', async () => {
    const layers = await readdir(join(root, 'layers'));
    const jdkLayer = layers.find((n) => /^\d+$/.test(n) && readdirSafe(join(root, 'layers', n, 'opt')).includes('jdk-11.0'))!;
    await writeFile(join(root, 'layers', jdkLayer, 'opt', 'jdk-11.0', 'VERSION'), 'tampered\n');
    const check = await hostpull(['verify']);
    expect(check.code).toBe(1);
    expect(check.stdout).toMatch(new RegExp(`layer ${fixtures.packages['JDK11.0']!.diffId}: content differs from what was unpacked`));
    expect(check.stdout).toMatch(/run `hostpull verify --repair`/);

    const repair = await hostpull(['verify', '--repair']);
    expect(repair.code, repair.stderr).toBe(0);
    expect(repair.stdout).toMatch(/repaired: quarantined to \S+quarantine\/layer-/);
    expect(repair.stdout).toMatch(/1 corrupt, 1 repaired/);

    const again = await pullJson();
    expect(again.upToDate).toBe(false);
    expect(again.layers.filter((l) => l.unpacked)).toHaveLength(1);
    const run = await hostpull(['run', '--pull', 'never', IMAGE, '--', '/bin/cat', '/opt/jdk-11.0/VERSION']);
    expect(run.stdout, run.stderr).toBe('JDK11.0\n');
    expect((await hostpull(['verify'])).code).toBe(0);
  });

  it('a layer whose directory went missing is unpacked again; a corrupt stored blob under it is fetched again', async () => {
    const jdk = fixtures.packages['JDK11.0']!;
    await corrupt(blobFile(jdk.digest));
    const jdkLayer = (await readdir(join(root, 'layers'))).find((n) => /^\d+$/.test(n) && readdirSafe(join(root, 'layers', n, 'opt')).includes('jdk-11.0'))!;
    await rm(join(root, 'layers', jdkLayer), { recursive: true });
    const again = await pullJson();
    expect(again.upToDate).toBe(false);
    expect(again.bytesFetched).toBeGreaterThanOrEqual(jdk.size);
    const run = await hostpull(['run', '--pull', 'never', IMAGE, '--', '/bin/cat', '/opt/jdk-11.0/VERSION']);
    expect(run.stdout, run.stderr).toBe('JDK11.0\n');
    const verify = await hostpull(['verify']);
    expect(verify.code, verify.stdout).toBe(0);
  });
});

function readdirSafe(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}
