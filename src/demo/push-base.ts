import { spawn } from 'node:child_process';
import { createReadStream, createWriteStream } from 'node:fs';
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { HostpullError } from '../errors.js';
import { createDigester, digestFromHash, digestOf, hostPlatform, MediaType, type Digest } from '../oci/index.js';
import { defaultLayerMtime } from '../publish/build-layer.js';
import type { Upstream } from '../server/upstream.js';

export interface PushBaseOptions {
  rootfs: string;
  upstream: Upstream;
  /** Repository in the upstream. */
  repository: string;
  tag: string;
  /** Scratch directory for the layer file. */
  tmpDir: string;
  signal?: AbortSignal;
}

export interface PushedBase {
  image: string;
  manifestDigest: Digest;
  layerDigest: Digest;
  diffId: Digest;
  size: number;
}

const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

function hashing(onDone: (digest: Digest, size: number) => void): Transform {
  const hash = createDigester();
  let size = 0;
  return new Transform({
    transform(chunk: Buffer, _e, cb) {
      hash.update(chunk);
      size += chunk.length;
      cb(null, chunk);
    },
    flush(cb) {
      onDone(digestFromHash(hash, 'sha256'), size);
      cb();
    },
  });
}

/**
 * Packs the base rootfs as one gzip layer and pushes it, with a config carrying PATH and a
 * shell as Cmd, straight into the upstream (a library call: `hostpull publish` packs a package
 * under its prefix and refuses `/`, and a base is exactly the thing that owns `/`).
 *
 * GNU tar rather than our package tar writer: a rootfs has hardlinks and setuid bits to keep, and
 * `--sort=name`, a fixed mtime, numeric owner 0 and pax headers without atime/ctime make the
 * archive byte-for-byte the same for the same tree, so re-pushing gives the same digest.
 */
export async function pushBaseImage(options: PushBaseOptions): Promise<PushedBase> {
  const mtime = defaultLayerMtime();
  const layerFile = join(options.tmpDir, `base-layer.${process.pid}.tar.gz`);
  const top = (await readdir(options.rootfs)).sort();
  const tar = spawn(
    'tar',
    [
      '--sort=name',
      `--mtime=@${Math.floor(mtime.getTime() / 1000)}`,
      '--owner=0',
      '--group=0',
      '--numeric-owner',
      '--format=posix',
      '--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime',
      '-C',
      options.rootfs,
      '-cf',
      '-',
      '--',
      ...top,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'], ...(options.signal ? { signal: options.signal } : {}) },
  );
  let stderr = '';
  tar.stderr.setEncoding('utf8').on('data', (s: string) => (stderr = (stderr + s).slice(-4096)));
  const exited = new Promise<void>((resolve, reject) => {
    tar.once('error', reject);
    tar.once('close', (code) => (code === 0 ? resolve() : reject(new HostpullError('DEMO_BUILD_FAILED', `tar of ${options.rootfs} exited with ${code}: ${stderr.trim()}`))));
  });
  let diffId: Digest | undefined;
  let digest: Digest | undefined;
  let size = 0;
  try {
    await Promise.all([
      pipeline(
        tar.stdout,
        hashing((d) => (diffId = d)),
        createGzip({ level: 6 }),
        hashing((d, s) => {
          digest = d;
          size = s;
        }),
        createWriteStream(layerFile),
      ),
      exited,
    ]);
    const created = mtime.toISOString().replace(/\.000Z$/, 'Z');
    const platform = hostPlatform();
    const config = Buffer.from(
      JSON.stringify({
        created,
        architecture: platform.architecture,
        os: platform.os,
        config: { Env: [`PATH=${DEFAULT_PATH}`], Cmd: ['/bin/sh'], WorkingDir: '/' },
        rootfs: { type: 'layers', diff_ids: [diffId!] },
        history: [{ created, created_by: 'hostpull demo: Debian 12 libc6, libstdc++6, zlib1g, busybox-static, base-files' }],
      }),
    );
    const configDigest = digestOf(config);
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaType.OciManifest,
        config: { mediaType: MediaType.OciConfig, digest: configDigest, size: config.length },
        layers: [{ mediaType: MediaType.OciLayerGzip, digest: digest!, size }],
        annotations: { 'org.opencontainers.image.created': created, 'org.opencontainers.image.title': 'hostpull demo base' },
      }),
    );
    const { repository, upstream, tag } = options;
    await upstream.putBlob(repository, digest!, size, () => createReadStream(layerFile), options.signal ? { signal: options.signal } : {});
    await upstream.putBlob(repository, configDigest, config.length, config, options.signal ? { signal: options.signal } : {});
    const manifestDigest = await upstream.putManifest(repository, tag, manifest, MediaType.OciManifest, options.signal);
    return { image: `${repository}:${tag}`, manifestDigest, layerDigest: digest!, diffId: diffId!, size };
  } finally {
    if (tar.exitCode === null) tar.kill();
    await rm(layerFile, { force: true });
  }
}
