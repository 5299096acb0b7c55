import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { finished } from 'node:stream/promises';
import { HostpullError } from '../errors.js';
import { DEFAULT_PATH } from '../oci/index.js';
import { attachToc, defaultLayerMtime, pushSingleLayerImage, writeSeekableLayer, type PushedLayerImage } from '../publish/index.js';
import type { Upstream } from '../server/index.js';

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

/** The base as pushed: seekable, its table of contents attached as a referrer. */
export type PushedBase = PushedLayerImage;


/**
 * Packs the base rootfs as one seekable gzip layer with its table of contents (the same writer
 * as `hostpull publish`: spans compressed on all cores, the TOC attached as a referrer, so the
 * base is mounted lazily like the packages) and pushes it, with a config carrying PATH and a
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
  const out = createWriteStream(layerFile);
  try {
    const [layer] = await Promise.all([
      writeSeekableLayer(tar.stdout, out, { where: `base rootfs ${options.rootfs}`, ...(options.signal ? { signal: options.signal } : {}) }).then(async (l) => {
        out.end();
        await finished(out);
        return l;
      }),
      exited,
    ]);
    const { digest, diffId, size } = layer;
    const created = mtime.toISOString().replace(/\.000Z$/, 'Z');
    const { repository, upstream, tag } = options;
    const manifest = await pushSingleLayerImage(
      upstream,
      repository,
      tag,
      {
        layer: { file: layerFile, digest, diffId, size },
        created,
        runConfig: { Env: [`PATH=${DEFAULT_PATH}`], Cmd: ['/bin/sh'], WorkingDir: '/' },
        createdBy: 'hostpull demo: Debian 12 libc6, libstdc++6, zlib1g, busybox-static, base-files',
        annotations: { 'org.opencontainers.image.created': created, 'org.opencontainers.image.title': 'hostpull demo base' },
      },
      { signal: options.signal, beforeTag: (subject) => attachToc(upstream, repository, layer, subject, created, options.signal) },
    );
    return { image: `${repository}:${tag}`, manifestDigest: manifest.digest, layerDigest: digest, diffId, size, tocDigest: layer.tocDigest };
  } finally {
    out.destroy();
    if (tar.exitCode === null) tar.kill();
    await rm(layerFile, { force: true });
  }
}
