/**
 * The whole containerd-snapshotter stack for an integration test file, started in beforeAll and
 * stopped (by pid) in afterAll: a docker-registry with the fixture packages, `hostpull serve`
 * synthesising composites over it, `hostpull daemon --snapshotter-socket`, and a private
 * containerd 1.6 using the daemon as its `hostpull` snapshotter (for CRI too).
 */
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { startTestDaemon, type TestDaemon } from '../integration/daemon/daemon-process.js';
import { startCompositeServer, type CompositeServer } from './composite-server.js';
import { startContainerd, type TestContainerd } from './containerd.js';
import { pushFixtureSet, type FixtureSet } from './fixtures.js';
import { startRegistry, type TestRegistry } from './registry.js';
import { makeTempDir, removeTempDir } from './tmp.js';

export interface SnapshotterStack {
  registry: TestRegistry;
  work: string;
  set: FixtureSet;
  server: CompositeServer;
  daemon: TestDaemon;
  containerd: TestContainerd;
  /** hostpull's store root. */
  root: string;
  /** `<server>/hostpull:<tag>` */
  ref(tag: string): string;
  /**
   * Stops the daemon (SIGTERM, or SIGKILL with `kill`, which leaves its sockets behind) and starts
   * it again on the same root and sockets.
   */
  restartDaemon(opts?: { kill?: boolean }): Promise<void>;
}

export function useSnapshotterStack(codes: string[]): () => SnapshotterStack {
  let stack: SnapshotterStack | undefined;
  let registry: TestRegistry | undefined;
  let server: CompositeServer | undefined;
  let work: string | undefined;
  beforeAll(async () => {
    registry = await startRegistry();
    work = await makeTempDir('snapshotter');
    const set = await pushFixtureSet(registry.url, { codes, composites: [] });
    server = await startCompositeServer({ registryUrl: registry.url, dir: work, codes });
    const root = join(work, 'store');
    const daemonOpts = { root, socket: join(work, 'hostpull.sock'), args: ['--snapshotter-socket', join(work, 'snapshotter.sock')] };
    const daemon = await startTestDaemon(daemonOpts);
    const s: SnapshotterStack = {
      registry,
      work,
      set,
      server,
      daemon,
      root,
      containerd: undefined as unknown as TestContainerd,
      ref: (tag) => `${server!.host}/hostpull:${tag}`,
      restartDaemon: async (opts = {}) => {
        if (opts.kill) {
          s.daemon.child.kill('SIGKILL');
          await s.daemon.exited;
        } else await s.daemon.stop();
        s.daemon = await startTestDaemon(daemonOpts);
      },
    };
    stack = s;
    s.containerd = await startContainerd({ dir: join(work, 'containerd'), snapshotterSocket: join(work, 'snapshotter.sock'), registries: [server.host, registry.host] });
  });
  afterAll(async () => {
    await stack?.containerd?.stop();
    await stack?.daemon.stop();
    await server?.stop();
    await registry?.stop();
    if (work) await removeTempDir(work);
  });
  return () => {
    if (!stack) throw new Error('useSnapshotterStack(): not started yet (use it inside tests)');
    return stack;
  };
}
