/**
 * The snapshotter's state lives in hostpull's store: restarts of the daemon and of containerd
 * lose nothing, a running container keeps its rootfs, and namespaces share layers while GC frees
 * a layer only once no snapshot in any namespace refers to it. Real containerd 1.6, real runc.
 */
import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from '../../helpers/cli.js';
import { CRI_NAMESPACE, shLingering } from '../../helpers/containerd.js';
import { DEFAULT_CODES } from '../../helpers/fixtures.js';
import { useSnapshotterStack } from '../../helpers/snapshotter-stack.js';

const stack = useSnapshotterStack([...DEFAULT_CODES, 'ANT1.10']);

async function layerDirs(): Promise<string[]> {
  return (await readdir(join(stack().root, 'layers'))).filter((n) => /^[0-9]+$/.test(n));
}

/** layers/<id> directories holding the ANT1.10 package (the only layer with /opt/ant-1.10). */
async function antLayerDirs(): Promise<string[]> {
  return (await layerDirs()).filter((id) => existsSync(join(stack().root, 'layers', id, 'opt', 'ant-1.10')));
}

describe('hostpull snapshotter across restarts and namespaces', () => {
  it('after the daemon is killed and restarted, then containerd restarts, snapshots are listed, a running container keeps its rootfs, and a new one runs', async () => {
    const { containerd, ref } = stack();
    const image = ref('GRD7.0-JDK11.0-MVN3.8');
    await containerd.cri.pullImage(image);
    const ns = { namespace: CRI_NAMESPACE };
    const started = await containerd.ctr(['run', '-d', '--snapshotter', 'hostpull', image, 'long-1', '/bin/sh', '-c', 'sleep 300'], ns);
    expect(started.stderr).toBe('');
    expect(started.code).toBe(0);
    try {
      const before = await containerd.ctr(['snapshots', '--snapshotter', 'hostpull', 'ls'], ns);
      // Killed: no clean stop, its snapshotter socket stays behind and is replaced on start.
      await stack().restartDaemon({ kill: true });
      const execAfterDaemon = await containerd.ctr(['task', 'exec', '--exec-id', 'e1', 'long-1', ...shLingering('jdk; mvn; grd')], ns);
      expect(execAfterDaemon.stdout).toBe('JDK11.0 \nMVN3.8 \nGRD7.0 \n');
      // containerd redials the restarted daemon after its gRPC backoff (about a second); until
      // then its calls fail UNAVAILABLE, and a kubelet retries. Retry the same way.
      let relisted = await containerd.ctr(['snapshots', '--snapshotter', 'hostpull', 'ls'], ns);
      for (let i = 0; i < 100 && relisted.code !== 0; i++) {
        await new Promise((r) => setTimeout(r, 100));
        relisted = await containerd.ctr(['snapshots', '--snapshotter', 'hostpull', 'ls'], ns);
      }
      expect(relisted.stdout.split('\n').sort()).toEqual(before.stdout.split('\n').sort());

      await containerd.restart();
      const after = await containerd.ctr(['snapshots', '--snapshotter', 'hostpull', 'ls'], ns);
      expect(after.code).toBe(0);
      expect(after.stdout.split('\n').sort()).toEqual(before.stdout.split('\n').sort());
      expect(after.stdout).toContain('long-1');
      const tasks = await containerd.ctr(['task', 'ls'], ns);
      expect(tasks.stdout).toMatch(/long-1\s+\d+\s+RUNNING/);
      const execAfterContainerd = await containerd.ctr(['task', 'exec', '--exec-id', 'e2', 'long-1', ...shLingering('cat /opt/grd-7.0/VERSION')], ns);
      expect(execAfterContainerd.stdout).toBe('GRD7.0\n');

      const fresh = await containerd.ctr(['run', '--rm', '--snapshotter', 'hostpull', image, 'fresh-1', ...shLingering('jdk; echo $PATH')], ns);
      expect(fresh.stderr).toBe('');
      expect(fresh.stdout).toMatch(/^JDK11.0 \n\/opt\/grd-7.0\/bin:/);
    } finally {
      await containerd.ctr(['task', 'kill', '--signal', 'SIGKILL', 'long-1'], ns);
      for (let i = 0; i < 50; i++) {
        const t = await containerd.ctr(['task', 'ls'], ns);
        if (!/long-1\s+\d+\s+RUNNING/.test(t.stdout)) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      await containerd.ctr(['task', 'delete', 'long-1'], ns);
      await containerd.ctr(['container', 'delete', 'long-1'], ns);
    }
  });

  it('two namespaces share one layer directory; removing the image in one keeps it usable in the other; GC frees it once no snapshot refers to it', async () => {
    const { containerd, ref, root } = stack();
    const image = ref('ANT1.10-JDK11.0');
    const other = { namespace: 'other' };
    await containerd.cri.pullImage(image);
    const pulled = await containerd.ctr(['image', 'pull', '--plain-http', '--snapshotter', 'hostpull', image], other);
    expect(pulled.code).toBe(0);
    // containerd applied the layers again in "other"; hostpull kept only the one copy.
    const [antDir, ...more] = await antLayerDirs();
    expect(antDir).toBeDefined();
    expect(more).toEqual([]);
    expect((await readdir(join(root, 'snapshots'))).filter((n) => existsSync(join(root, 'snapshots', n, 'fs', 'opt', 'ant-1.10')))).toEqual([]);

    await containerd.cri.removeImage(image);
    expect(await containerd.cri.imageStatus(image)).toBeUndefined();
    const gc1 = await runCli(['--root', root, 'gc', '--min-age', '0s', '--json', '--socket', stack().daemon.socket]);
    expect(gc1.code).toBe(0);
    expect(existsSync(join(root, 'layers', antDir!))).toBe(true);
    const run = await containerd.ctr(['run', '--rm', '--snapshotter', 'hostpull', image, 'other-1', ...shLingering('ant')], other);
    expect(run.stderr).toBe('');
    expect(run.stdout).toBe('ANT1.10 \n');

    const removed = await containerd.ctr(['image', 'rm', '--sync', image], other);
    expect(removed.code).toBe(0);
    const gc2 = await runCli(['--root', root, 'gc', '--min-age', '0s', '--json', '--socket', stack().daemon.socket]);
    expect(gc2.code).toBe(0);
    expect(JSON.parse(gc2.stdout).layersRemoved).toBeGreaterThanOrEqual(1);
    expect(existsSync(join(root, 'layers', antDir!))).toBe(false);
    // Layers the first test's image still refers to (its snapshots in k8s.io) stay.
    expect(await layerDirs()).not.toHaveLength(0);
  });
});
