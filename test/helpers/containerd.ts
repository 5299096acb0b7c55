/**
 * A private containerd (Debian's 1.6) for integration tests: config, root, state and sockets under
 * one temp dir; the CRI plugin on (driven over gRPC like a kubelet, with our own runtime.v1
 * ImageService definition); registries from a certs.d dir; hostpull's snapshotter as the proxy
 * snapshotter `hostpull`, which the CRI plugin uses with disable_snapshot_annotations = false.
 * Stopped by its pid; `ctr` talks to it by its socket.
 */
import { credentials, type Client, type ServiceError } from '@grpc/grpc-js';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { HostpullError } from '../../src/errors.js';
import { loadProto, serviceOf } from '../../src/snapshotter/proto.js';
import { collectChild, type CliResult } from './cli.js';

export const CONTAINERD_BIN = '/usr/bin/containerd';
export const CTR_BIN = '/usr/bin/ctr';
/** The namespace containerd's CRI plugin keeps Kubernetes' images in. */
export const CRI_NAMESPACE = 'k8s.io';

/**
 * The argv of a `ctr run` or `ctr task exec` whose output a test reads: `script` in a shell that
 * stays half a second after it, then exits with the script's status. containerd 1.6 can lose the
 * last output of a process that exits right after writing it (the shim's copy of its pipe races
 * the exit, as concourse/concourse#6775 found): a clean-clone CI run once got "JDK11.0 \n" from
 * `jdk; echo $PATH`, without the echo's line.
 */
export function shLingering(script: string): string[] {
  return ['/bin/sh', '-c', `${script}; status=$?; sleep 0.5; exit $status`];
}

export interface ContainerdOptions {
  /** Directory for config.toml, root/, state/, certs.d/ and the sockets (removed by the caller). */
  dir: string;
  /** hostpull's snapshotter socket (`[proxy_plugins.hostpull] address`). */
  snapshotterSocket: string;
  /** Registries (`127.0.0.1:PORT`) containerd reaches over plain http, written to certs.d. */
  registries: string[];
}

export interface CriImageService {
  /** PullImage as a kubelet sends it; resolves with image_ref (the image id). */
  pullImage(image: string): Promise<string>;
  removeImage(image: string): Promise<void>;
  /** The image id, or undefined when containerd does not have it. */
  imageStatus(image: string): Promise<string | undefined>;
}

export interface TestContainerd {
  socket: string;
  dir: string;
  readonly pid: number;
  cri: CriImageService;
  /** `ctr --address SOCKET -n NAMESPACE ARGS…` (namespace default 'default'). */
  ctr(args: string[], opts?: { namespace?: string; timeoutMs?: number }): Promise<CliResult>;
  /** containerd's own log so far. */
  log(): string;
  /** SIGTERM and wait (SIGKILL after 20 s); running containers' shims keep running. */
  stop(): Promise<void>;
  /** stop(), then start again with the same config, root and state. */
  restart(): Promise<void>;
}

function toml(s: string): string {
  return JSON.stringify(s);
}

function config(o: ContainerdOptions, socket: string): string {
  const d = o.dir;
  return `version = 2
root = ${toml(join(d, 'root'))}
state = ${toml(join(d, 'state'))}
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]
[grpc]
  address = ${toml(socket)}
[ttrpc]
  address = ${toml(`${socket}.ttrpc`)}
[debug]
  level = "info"
[metrics]
  address = ""
# A deletion starts a collection at once, which is when containerd asks the snapshotter to Remove
# what it no longer references. By default a deletion waits for the next collection, scheduled
# 49 times the average collection's own time after the last one: seconds apart when bolt's
# fsyncs are slow, and tests that wait for a Remove would wait for that.
[plugins."io.containerd.gc.v1.scheduler"]
  deletion_threshold = 1
[proxy_plugins.hostpull]
  type = "snapshot"
  address = ${toml(o.snapshotterSocket)}
[plugins."io.containerd.internal.v1.opt"]
  path = ${toml(join(d, 'opt'))}
[plugins."io.containerd.grpc.v1.cri"]
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "hostpull"
    disable_snapshot_annotations = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = ${toml(join(d, 'cni', 'bin'))}
    conf_dir = ${toml(join(d, 'cni', 'conf'))}
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = ${toml(join(d, 'certs.d'))}
`;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function call<Req, Res>(client: Client, method: string, req: Req): Promise<Res> {
  return new Promise((resolve, reject) => {
    const fn = (client as unknown as Record<string, (r: Req, cb: (e: ServiceError | null, res: Res) => void) => void>)[method]!;
    fn.call(client, req, (err, res) => (err ? reject(err) : resolve(res)));
  });
}

/** Starts containerd and waits until both `ctr version` and the CRI ImageService answer. */
export async function startContainerd(o: ContainerdOptions): Promise<TestContainerd> {
  const socket = join(o.dir, 'containerd.sock');
  await mkdir(join(o.dir, 'cni', 'conf'), { recursive: true });
  await mkdir(join(o.dir, 'cni', 'bin'), { recursive: true });
  for (const host of o.registries) {
    await mkdir(join(o.dir, 'certs.d', host), { recursive: true });
    await writeFile(join(o.dir, 'certs.d', host, 'hosts.toml'), `server = "http://${host}"\n[host."http://${host}"]\n  capabilities = ["pull", "resolve"]\n`);
  }
  await writeFile(join(o.dir, 'config.toml'), config(o, socket));
  const Images = serviceOf(loadProto('cri/runtime/v1/api.proto'), 'runtime.v1.ImageService');
  let child: ChildProcess | undefined;
  let output = '';
  let exited: Promise<void> = Promise.resolve();
  let gone = true;

  const ctr: TestContainerd['ctr'] = (args, opts = {}) =>
    collectChild(spawn(CTR_BIN, ['--address', socket, '--namespace', opts.namespace ?? 'default', ...args], { stdio: ['pipe', 'pipe', 'pipe'] }), {
      timeoutMs: opts.timeoutMs ?? 120_000,
    });
  let client: Client | undefined;
  const images = (): Client => (client ??= new Images(`unix:${socket}`, credentials.createInsecure()));

  const launch = async () => {
    output = '';
    const c = spawn(CONTAINERD_BIN, ['--config', join(o.dir, 'config.toml')], { stdio: ['ignore', 'pipe', 'pipe'], detached: false });
    child = c;
    gone = false;
    c.stdout!.setEncoding('utf8').on('data', (s: string) => (output += s));
    c.stderr!.setEncoding('utf8').on('data', (s: string) => (output += s));
    exited = new Promise((resolve) => c.once('exit', () => resolve()));
    void exited.then(() => (gone = true));
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (gone) throw new HostpullError('TEST_CONTAINERD_START', `containerd exited during start:\n${output.slice(-4000)}`);
      const v = await ctr(['version'], { timeoutMs: 5_000 }).catch(() => undefined);
      if (v?.code === 0) {
        const cri = await call(images(), 'ListImages', {}).then(
          () => true,
          () => false,
        );
        if (cri) return;
      }
      if (Date.now() > deadline) {
        c.kill('SIGKILL');
        throw new HostpullError('TEST_CONTAINERD_START', `containerd did not answer on ${socket}:\n${output.slice(-4000)}`);
      }
      await sleep(100);
    }
  };

  const stop = async () => {
    client?.close();
    client = undefined;
    if (!child || gone) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child?.kill('SIGKILL'), 20_000);
    await exited;
    clearTimeout(timer);
  };

  await launch();
  return {
    socket,
    dir: o.dir,
    get pid() {
      return child?.pid ?? 0;
    },
    cri: {
      pullImage: async (image) => (await call<unknown, { image_ref: string }>(images(), 'PullImage', { image: { image } })).image_ref,
      removeImage: async (image) => {
        await call(images(), 'RemoveImage', { image: { image } });
      },
      imageStatus: async (image) => (await call<unknown, { image?: { id: string } | null }>(images(), 'ImageStatus', { image: { image } })).image?.id || undefined,
    },
    ctr,
    log: () => output,
    stop,
    restart: async () => {
      await stop();
      await launch();
    },
  };
}
