/**
 * hostpull's daemon as containerd's proxy snapshotter, with a real containerd 1.6 driven like a
 * kubelet (CRI ImageService.PullImage over gRPC) and through `ctr`, composites synthesised by a
 * real `hostpull serve` over a real docker-registry whose access log counts every blob fetched.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from '../../helpers/cli.js';
import { CRI_NAMESPACE } from '../../helpers/containerd.js';
import { buildLayer, DEFAULT_CODES, packageEnv, packageFiles, pushImage } from '../../helpers/fixtures.js';
import { blobRequests, type TestRegistry } from '../../helpers/registry.js';
import { useSnapshotterStack } from '../../helpers/snapshotter-stack.js';

const stack = useSnapshotterStack([...DEFAULT_CODES, 'ANT1.10', 'EVL1.0']);

/** How many times each blob digest was GET from the registry among `entries`. */
function blobCounts(entries: Awaited<ReturnType<TestRegistry['since']>>): Map<string, number> {
  const counts = new Map<string, number>();
  for (const e of blobRequests(entries)) {
    const digest = e.path.split('/blobs/')[1]!.split('?')[0]!;
    counts.set(digest, (counts.get(digest) ?? 0) + 1);
  }
  return counts;
}

async function layerDirs(): Promise<string[]> {
  return (await readdir(join(stack().root, 'layers'))).filter((n) => /^[0-9]+$/.test(n));
}

async function stats(): Promise<{ store: { layers: number; blobs: number }; snapshotter: { totals: Record<string, number>; layers: Array<Record<string, unknown>> } }> {
  const r = await runCli(['--root', stack().root, 'stats', '--json', '--socket', stack().daemon.socket]);
  expect(r.stderr).toBe('');
  return JSON.parse(r.stdout);
}

/**
 * The error lines of ctr's stderr, but for those its progress display logs when the pull's
 * context ends while it asks the content store about a blob (`failed to get content info`) or
 * about the downloads in progress (`active check failed`), with `context canceled`: a race in
 * ctr's display, after a pull that succeeded.
 */
const CTR_DISPLAY_RACES = ['msg="failed to get content info"', 'msg="active check failed"'];
function ctrErrors(stderr: string): string[] {
  return stderr
    .split('\n')
    .filter((l) => /level=error/.test(l))
    .filter((l) => !(CTR_DISPLAY_RACES.some((m) => l.includes(m)) && l.includes('error="context canceled"')));
}

describe('containerd CRI pulls through the hostpull snapshotter', () => {
  it('fetches each distinct blob once, keeps one directory per distinct layer, and a new combination fetches no layer', async () => {
    const { registry, containerd, set, ref } = stack();
    const mark = await registry.mark();
    for (const tag of ['GRD7.0-JDK11.0-MVN3.8', 'GRD7.0-JDK11.0-MVN3.7', 'GRD7.0-JDK17.0-MVN3.8']) {
      expect(await containerd.cri.pullImage(ref(tag))).toMatch(/^sha256:/);
    }
    const counts = blobCounts(await registry.since(mark));
    const layers = [set.base, ...['JDK11.0', 'MVN3.8', 'MVN3.7', 'JDK17.0', 'GRD7.0'].map((c) => set.packages[c]!)];
    for (const l of layers) expect(counts.get(l.digest), `layer ${l.digest}`).toBe(1);
    // Configs too: containerd fetches each once, hostpull needs none (the diffIDs are annotations).
    expect([...counts.values()].every((n) => n === 1)).toBe(true);
    expect(await layerDirs()).toHaveLength(6);

    const again = await registry.mark();
    await containerd.cri.pullImage(ref('GRD7.0-JDK17.0-MVN3.7'));
    const fetched = [...blobCounts(await registry.since(again)).keys()];
    expect(fetched.filter((d) => layers.some((l) => l.digest === d))).toEqual([]);
    expect(await layerDirs()).toHaveLength(6);

    // containerd downloaded no layer (its content store has manifests and configs only), and
    // hostpull kept each layer unpacked only, without its compressed blob.
    const content = await containerd.ctr(['content', 'ls', '-q'], { namespace: CRI_NAMESPACE });
    expect(content.code).toBe(0);
    expect(layers.filter((l) => content.stdout.includes(l.digest))).toEqual([]);
    const s = await stats();
    expect(s.store.layers).toBe(6);
    expect(s.store.blobs).toBe(0);
    expect(s.snapshotter.totals.fetched).toBe(6);
    expect(s.snapshotter.totals.applied).toBe(0);
    // Canonical tags sort GRD7.0 first: base, GRD7.0, JDK…, MVN…. New chains: 4 in image 1, MVN3.7
    // in 2, JDK17.0 and MVN3.8-on-JDK17.0 in 3, MVN3.7-on-JDK17.0 in 4: two of them reuse a layer.
    expect(s.snapshotter.totals.reused).toBe(2);
    expect(s.snapshotter.layers.find((l) => l.diffId === set.packages['MVN3.8']!.diffId)).toMatchObject({ fetched: 1, reused: 1, applied: 0 });
    expect(s.snapshotter.layers.find((l) => l.diffId === set.packages['MVN3.7']!.diffId)).toMatchObject({ fetched: 1, reused: 1, applied: 0 });

    const metrics = await stack().daemon.get('/metrics');
    expect(metrics.body).toContain('hostpull_snapshotter_layers_total{outcome="fetched"} 6');
    expect(metrics.body).toContain(`hostpull_snapshotter_layer_outcomes{diff_id="${set.packages['MVN3.8']!.diffId}",outcome="reused"} 1`);
    const text = await runCli(['--root', stack().root, 'stats', '--socket', stack().daemon.socket]);
    expect(text.stdout).toMatch(/containerd snapshotter: \d+ snapshots; layers fetched by hostpull 6 \(.*\), reused 2, applied by containerd 0/);

    const listed = await containerd.ctr(['snapshots', '--snapshotter', 'hostpull', 'ls'], { namespace: CRI_NAMESPACE });
    expect(listed.code).toBe(0);
    expect(listed.stdout.trim().split('\n').slice(1).every((line) => line.includes('Committed'))).toBe(true);
  });

  it('an ordinary image (no diffID annotations) is fetched by hostpull too, which reads its config for the diffIDs', async () => {
    const { registry, containerd, set } = stack();
    const sbt = buildLayer(packageFiles('SBT1.9', { bytes: 64 * 1024 }));
    const image = await pushImage(registry.url, 'plain/app', 'v1', [set.base, sbt], { env: packageEnv(['SBT1.9']), cmd: ['/bin/sh'] });
    const before = (await stats()).snapshotter.totals;
    const mark = await registry.mark();
    await containerd.cri.pullImage(`${registry.host}/plain/app:v1`);
    const counts = blobCounts(await registry.since(mark));
    expect(counts.get(sbt.digest)).toBe(1);
    expect(counts.get(set.base.digest)).toBeUndefined();
    // containerd and hostpull each read the small config once; no layer twice.
    expect(counts.get(image.configDigest)).toBe(2);
    const after = (await stats()).snapshotter;
    expect(after.totals.fetched - before.fetched).toBe(1);
    expect(after.totals.applied - before.applied).toBe(0);
    expect(after.layers.find((l) => l.diffId === sbt.diffId)).toMatchObject({ fetched: 1 });
  });

  it('ctr image pull applies through the snapshotter; a later CRI pull of another image reuses what it applied', async () => {
    const { registry, containerd, set, ref } = stack();
    const pulled = await containerd.ctr(['image', 'pull', '--plain-http', '--snapshotter', 'hostpull', ref('ANT1.10-JDK11.0')], { namespace: 'plain' });
    expect(ctrErrors(pulled.stderr)).toEqual([]);
    expect(pulled.code).toBe(0);
    const ant = set.packages['ANT1.10']!;
    const mark = await registry.mark();
    await containerd.cri.pullImage(ref('ANT1.10-GRD7.0'));
    const counts = blobCounts(await registry.since(mark));
    expect(counts.get(ant.digest)).toBeUndefined();
    expect(await layerDirs()).toHaveLength(8);
    const s = await stats();
    expect(s.snapshotter.layers.find((l) => l.diffId === ant.diffId)).toMatchObject({ applied: 1, fetched: 0, lastReason: expect.stringContaining('no containerd.io/snapshot.ref label') });
    // The daemon said why, when containerd prepared the layer.
    const why = stack()
      .daemon.log()
      .split('\n')
      .filter((l) => l.includes('layer not handled remotely'));
    expect(why.length).toBeGreaterThanOrEqual(1);
    expect(JSON.parse(why[0]!).reason).toContain('containerd applies the layer itself');
  });

  it('ctr run prints the packages, and what the container writes stays out of the layer directories', async () => {
    const { containerd, root, ref } = stack();
    const r = await containerd.ctr(
      ['run', '--rm', '--snapshotter', 'hostpull', ref('ANT1.10-JDK11.0'), 'snap-run-1', '/bin/sh', '-c', 'ant; jdk; echo leak > /opt/jdk-11.0/leak; echo leak > /leak; cat /opt/jdk-11.0/leak'],
      { namespace: 'plain' },
    );
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('ANT1.10 \nJDK11.0 \nleak\n');
    for (const dir of await layerDirs()) {
      const top = await readdir(join(root, 'layers', dir));
      expect(top).not.toContain('leak');
      const jdk = await readFile(join(root, 'layers', dir, 'opt', 'jdk-11.0', 'leak')).catch(() => undefined);
      expect(jdk).toBeUndefined();
    }
  });

  it('a package layer that writes outside its prefix is refused, not left to containerd to apply', async () => {
    const { registry, containerd, root, ref } = stack();
    // The static catalog follows the tag; the tag now names a package that also writes /etc.
    const evil = buildLayer([...packageFiles('EVL1.0', { bytes: 1024, files: 1 }), { path: '/etc/evil.sh', content: 'echo owned\n' }]);
    await pushImage(registry.url, 'pkg/evl1.0', 'latest', [evil], { env: packageEnv(['EVL1.0']), cmd: ['/bin/sh'] });
    const before = (await stats()).snapshotter.totals;
    await expect(containerd.cri.pullImage(ref('EVL1.0-GRD7.0'))).rejects.toThrow(/is outside the package's prefix \/opt\/evl-1\.0/);
    const after = (await stats()).snapshotter.totals;
    expect(after.applied).toBe(before.applied);
    for (const d of await layerDirs()) expect(await readFile(join(root, 'layers', d, 'etc', 'evil.sh')).catch(() => undefined), d).toBeUndefined();
    const content = await containerd.ctr(['content', 'ls', '-q'], { namespace: CRI_NAMESPACE });
    expect(content.stdout).not.toContain(evil.digest);
  });
});
