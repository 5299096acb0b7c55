/**
 * Deterministic OCI images for tests: layers built in memory from file specs (same input, same
 * digest, on every run), pushed to a registry with plain HTTP (no dependency on src/registry, so
 * the client under test never builds its own fixtures).
 */
import { gzipSync } from 'node:zlib';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { HostpullError } from '../../src/errors.js';
import { digestOf, MediaType, type Digest } from '../../src/oci/index.js';
import { DEFAULT_MTIME, writeTar, type RawEntry } from './tar-writer.js';

export interface FileSpec {
  /** Absolute or relative; stored relative (`opt/x/bin/y`), as in real image layers. */
  path: string;
  /** Default 'file'. */
  type?: 'file' | 'dir' | 'symlink' | 'hardlink';
  content?: string | Buffer;
  /** Default 0o644 files, 0o755 dirs, 0o777 symlinks. */
  mode?: number;
  /** Symlink target (verbatim) or hardlink target path (normalised like `path`). */
  target?: string;
  uid?: number;
  gid?: number;
}

export interface BuiltLayer {
  tar: Buffer;
  /** The compressed blob as pushed (the tar itself for 'none'). */
  blob: Buffer;
  /** Digest of `blob`. */
  digest: Digest;
  /** Digest of `tar` (the config's rootfs.diff_ids entry). */
  diffId: Digest;
  /** Size of `blob`. */
  size: number;
  mediaType: string;
}

export interface BuildLayerOptions {
  /** Default 'gzip'. */
  compression?: 'gzip' | 'zstd' | 'none';
  /** Add a directory entry (0755, root) for every missing parent. Default true. */
  impliedDirs?: boolean;
}

function tarName(path: string): string {
  return path.replace(/^\/+/, '').replace(/\/+$/, '');
}

/**
 * A layer from file specs: entries sorted by name, missing parents added, mtime 2020-01-01,
 * owner 0:0 unless given; gzip without name or time (node's zlib writes mtime 0), so the same
 * files always give the same digest.
 */
export function buildLayer(files: FileSpec[], opts: BuildLayerOptions = {}): BuiltLayer {
  const byName = new Map<string, FileSpec>();
  for (const f of files) byName.set(tarName(f.path), f);
  if (opts.impliedDirs ?? true) {
    for (const name of [...byName.keys()]) {
      const parts = name.split('/');
      for (let i = 1; i < parts.length; i++) {
        const parent = parts.slice(0, i).join('/');
        if (!byName.has(parent)) byName.set(parent, { path: parent, type: 'dir' });
      }
    }
  }
  byName.delete('');
  // Byte order, not locale order: stable everywhere, and parents sort before their children.
  const names = [...byName.keys()].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  const entries: RawEntry[] = names.map((name) => {
    const f = byName.get(name)!;
    const type = f.type ?? 'file';
    const entry: RawEntry = { name: type === 'dir' ? `${name}/` : name, type, mtime: DEFAULT_MTIME, uid: f.uid ?? 0, gid: f.gid ?? 0 };
    if (f.mode !== undefined) entry.mode = f.mode;
    if (type === 'file') entry.content = f.content ?? '';
    if (type === 'symlink') entry.linkname = f.target ?? '';
    if (type === 'hardlink') entry.linkname = tarName(f.target ?? '');
    return entry;
  });
  return layerFromTar(writeTar(entries), opts.compression ?? 'gzip');
}

/** Compresses an existing tar (e.g. a hand-made malicious one) into a pushable layer. */
export function layerFromTar(tar: Buffer, compression: 'gzip' | 'zstd' | 'none' = 'gzip'): BuiltLayer {
  let blob: Buffer;
  let mediaType: string;
  if (compression === 'gzip') {
    blob = gzipSync(tar, { level: 6 });
    mediaType = MediaType.OciLayerGzip;
  } else if (compression === 'zstd') {
    const r = spawnSync('zstd', ['-q', '-c', '-3'], { input: tar, maxBuffer: 1 << 30 });
    if (r.status !== 0) {
      throw new HostpullError('TEST_FIXTURE', `zstd failed: ${r.stderr?.toString() || r.error?.message}`);
    }
    blob = r.stdout;
    mediaType = MediaType.OciLayerZstd;
  } else {
    blob = tar;
    mediaType = MediaType.OciLayer;
  }
  return { tar, blob, digest: digestOf(blob), diffId: digestOf(tar), size: blob.length, mediaType };
}

/** `JDK11.0` → `/opt/jdk-11.0`: letters lowercased, a dash, the rest (the DESIGN.md convention). */
export function packagePrefix(code: string): string {
  const m = /^([A-Za-z]+)(.*)$/.exec(code);
  if (!m || m[2] === '') return `/opt/${code.toLowerCase()}`;
  return `/opt/${m[1]!.toLowerCase()}-${m[2]!.toLowerCase()}`;
}

/** Name of the launcher script in `<prefix>/bin/`: the code's letters, lowercased (`jdk`). */
export function packageCommand(code: string): string {
  return (/^[A-Za-z]+/.exec(code)?.[0] ?? code).toLowerCase();
}

/** mulberry32: a tiny seeded PRNG; reproducible content is all we need, not quality. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

function seedOf(code: string): number {
  return createHash('sha256').update(code).digest().readUInt32BE(0);
}

function randomBuffer(next: () => number, len: number): Buffer {
  const buf = Buffer.alloc(len);
  let i = 0;
  for (; i + 4 <= len; i += 4) buf.writeUInt32LE(next(), i);
  for (; i < len; i++) buf[i] = next() & 0xff;
  return buf;
}

export interface PackageFilesOptions {
  /** Number of data files (besides bin/, VERSION). Default 16. */
  files?: number;
  /** Total data bytes, split unevenly between files. Default 256 KiB. */
  bytes?: number;
  /** PRNG seed. Default derived from the code, so each code has its own content. */
  seed?: number;
  /** Directory the package owns. Default packagePrefix(code), e.g. /opt/jdk-11.0. */
  prefix?: string;
}

/**
 * A package tree under its prefix: `bin/<cmd>` (an executable sh script printing the code and
 * its args), `VERSION` (the code), and `lib/…` files of seeded pseudo-random bytes, total ≈ bytes.
 * Half of each file is random, half repeats, so gzip shrinks it roughly by half like real content.
 */
export function packageFiles(code: string, opts: PackageFilesOptions = {}): FileSpec[] {
  const prefix = (opts.prefix ?? packagePrefix(code)).replace(/\/+$/, '');
  const count = Math.max(1, opts.files ?? 16);
  const total = Math.max(count, opts.bytes ?? 256 * 1024);
  const next = prng(opts.seed ?? seedOf(code));
  // Uneven sizes (weights 1..3) so layers look less synthetic; the last file takes the remainder.
  const weights = Array.from({ length: count }, () => 1 + (next() % 3));
  const wsum = weights.reduce((a, b) => a + b, 0);
  const out: FileSpec[] = [
    { path: `${prefix}`, type: 'dir' },
    { path: `${prefix}/bin`, type: 'dir' },
    {
      path: `${prefix}/bin/${packageCommand(code)}`,
      mode: 0o755,
      content: `#!/bin/sh\necho "${code} $*"\n`,
    },
    { path: `${prefix}/VERSION`, content: `${code}\n` },
    { path: `${prefix}/lib`, type: 'dir' },
  ];
  let used = 0;
  for (let i = 0; i < count; i++) {
    const size = i === count - 1 ? total - used : Math.floor((total * weights[i]!) / wsum);
    used += size;
    const half = Math.floor(size / 2);
    const random = randomBuffer(next, half);
    const body = Buffer.alloc(size);
    random.copy(body, 0);
    for (let j = half; j < size; j++) body[j] = body[j % Math.max(1, Math.min(half, 64))] ?? 0;
    out.push({ path: `${prefix}/lib/part-${String(i).padStart(4, '0')}.bin`, content: body });
  }
  return out;
}

/** Applets linked in baseFiles(): enough for shell scripts in tests. */
const BUSYBOX_APPLETS = [
  'sh', 'ash', 'ls', 'cat', 'echo', 'env', 'find', 'sha256sum', 'md5sum', 'id', 'sleep', 'mkdir', 'rm', 'cp', 'mv',
  'touch', 'stat', 'head', 'tail', 'wc', 'grep', 'sed', 'true', 'false', 'test', '[', 'readlink', 'ps', 'uname',
  'pwd', 'chmod', 'chown', 'ln', 'dirname', 'basename', 'printf', 'kill', 'hostname', 'whoami', 'tr', 'sort', 'uniq',
  'cut', 'xargs', 'du', 'df', 'date', 'mount', 'cmp', 'diff', 'tee', 'which', 'awk', 'tar', 'gzip', 'wget',
];

/**
 * A minimal busybox rootfs: /bin/busybox (from the host's busybox-static), applet symlinks to
 * it, /etc/passwd and /etc/group (root, nobody), /tmp 1777, /proc /sys /dev /opt /root dirs.
 */
export function baseFiles(): FileSpec[] {
  const files: FileSpec[] = [
    { path: '/bin', type: 'dir' },
    { path: '/bin/busybox', mode: 0o755, content: readFileSync('/bin/busybox') },
    { path: '/dev', type: 'dir' },
    { path: '/etc', type: 'dir' },
    { path: '/etc/passwd', content: 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' },
    { path: '/etc/group', content: 'root:x:0:\nnogroup:x:65534:\n' },
    { path: '/etc/hostname', content: 'hostpull-test\n' },
    { path: '/opt', type: 'dir' },
    { path: '/proc', type: 'dir', mode: 0o555 },
    { path: '/root', type: 'dir', mode: 0o700 },
    { path: '/sys', type: 'dir', mode: 0o555 },
    { path: '/tmp', type: 'dir', mode: 0o1777 },
    { path: '/usr', type: 'dir' },
    { path: '/usr/bin', type: 'dir' },
    { path: '/var', type: 'dir' },
  ];
  for (const a of BUSYBOX_APPLETS) files.push({ path: `/bin/${a}`, type: 'symlink', target: '/bin/busybox' });
  return files;
}

export interface ImageConfigSpec {
  env?: string[];
  cmd?: string[];
  entrypoint?: string[];
  workingDir?: string;
  user?: string;
  labels?: Record<string, string>;
}

export interface PushedImage {
  repository: string;
  tag: string;
  manifestDigest: Digest;
  configDigest: Digest;
  manifest: Buffer;
  config: Buffer;
  layers: BuiltLayer[];
}

export interface PushOptions {
  /** Authorization header value sent with every request (`Basic …`, `Bearer …`). */
  auth?: string;
  /** Manifest annotations. Default none. */
  annotations?: Record<string, string>;
  signal?: AbortSignal;
}

const CREATED = '2020-01-01T00:00:00Z';

/** OCI platform architecture of this host (busybox in the base layer is the host's). */
export function hostArchitecture(): string {
  const map: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386', ppc64: 'ppc64le', s390x: 's390x' };
  return map[process.arch] ?? process.arch;
}

/** The image config JSON (fixed `created`, one history entry per layer), as compact bytes. */
export function imageConfig(layers: BuiltLayer[], spec: ImageConfigSpec = {}): Buffer {
  const config: Record<string, unknown> = {};
  if (spec.user !== undefined) config['User'] = spec.user;
  if (spec.env !== undefined) config['Env'] = spec.env;
  if (spec.entrypoint !== undefined) config['Entrypoint'] = spec.entrypoint;
  if (spec.cmd !== undefined) config['Cmd'] = spec.cmd;
  if (spec.workingDir !== undefined) config['WorkingDir'] = spec.workingDir;
  if (spec.labels !== undefined) config['Labels'] = spec.labels;
  return Buffer.from(
    JSON.stringify({
      created: CREATED,
      architecture: hostArchitecture(),
      os: 'linux',
      config,
      rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
      history: layers.map((l, i) => ({ created: CREATED, created_by: `hostpull test fixture layer ${i} ${l.diffId}` })),
    }),
  );
}

/** The OCI image manifest JSON for a config and layers, as compact bytes. */
export function imageManifest(config: Buffer, layers: BuiltLayer[], annotations?: Record<string, string>): Buffer {
  const manifest: Record<string, unknown> = {
    schemaVersion: 2,
    mediaType: MediaType.OciManifest,
    config: { mediaType: MediaType.OciConfig, digest: digestOf(config), size: config.length },
    layers: layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
  };
  if (annotations && Object.keys(annotations).length > 0) manifest['annotations'] = annotations;
  return Buffer.from(JSON.stringify(manifest));
}

async function expectStatus(res: Response, ok: number[], what: string): Promise<void> {
  if (ok.includes(res.status)) return;
  const body = await res.text().catch(() => '');
  throw new HostpullError('TEST_PUSH', `${what}: HTTP ${res.status} ${body.slice(0, 500)}`);
}

/**
 * Uploads one blob unless HEAD says the repository already has it: POST an upload session, then
 * a monolithic PUT to its Location with `?digest=` (distribution-spec "Pushing a blob monolithically").
 */
export async function pushBlob(registryUrl: string, repository: string, digest: Digest, data: Buffer, opts: PushOptions = {}): Promise<void> {
  const base = registryUrl.replace(/\/+$/, '');
  const headers: Record<string, string> = opts.auth ? { authorization: opts.auth } : {};
  const init = { headers, signal: opts.signal };
  const head = await fetch(`${base}/v2/${repository}/blobs/${digest}`, { ...init, method: 'HEAD' });
  await head.arrayBuffer();
  if (head.status === 200) return;
  const post = await fetch(`${base}/v2/${repository}/blobs/uploads/`, { ...init, method: 'POST', headers: { ...headers, 'content-length': '0' } });
  await expectStatus(post, [202], `POST upload ${repository}`);
  await post.arrayBuffer();
  const location = post.headers.get('location');
  if (!location) throw new HostpullError('TEST_PUSH', `POST upload ${repository}: no Location header`);
  const url = new URL(location, `${base}/`);
  url.searchParams.set('digest', digest);
  const put = await fetch(url, {
    ...init,
    method: 'PUT',
    headers: { ...headers, 'content-type': 'application/octet-stream', 'content-length': String(data.length) },
    body: data,
  });
  await expectStatus(put, [201], `PUT blob ${digest} to ${repository}`);
  await put.arrayBuffer();
}

/** Pushes layers, config and an OCI manifest under `repository:tag`; checks the registry's digest. */
export async function pushImage(
  registryUrl: string,
  repository: string,
  tag: string,
  layers: BuiltLayer[],
  config: ImageConfigSpec = {},
  opts: PushOptions = {},
): Promise<PushedImage> {
  const base = registryUrl.replace(/\/+$/, '');
  const configBytes = imageConfig(layers, config);
  const configDigest = digestOf(configBytes);
  const manifest = imageManifest(configBytes, layers, opts.annotations);
  const manifestDigest = digestOf(manifest);
  // Sequential: distribution handles parallel uploads fine, but the same blob listed twice
  // (a layer repeated) would race its own HEAD check.
  for (const l of layers) await pushBlob(base, repository, l.digest, l.blob, opts);
  await pushBlob(base, repository, configDigest, configBytes, opts);
  const res = await fetch(`${base}/v2/${repository}/manifests/${tag}`, {
    method: 'PUT',
    headers: { ...(opts.auth ? { authorization: opts.auth } : {}), 'content-type': MediaType.OciManifest },
    body: manifest,
    signal: opts.signal,
  });
  await expectStatus(res, [201], `PUT manifest ${repository}:${tag}`);
  await res.arrayBuffer();
  const got = res.headers.get('docker-content-digest');
  if (got && got !== manifestDigest) {
    throw new HostpullError('TEST_PUSH', `registry stored manifest ${repository}:${tag} as ${got}, expected ${manifestDigest}`);
  }
  return { repository, tag, manifestDigest, configDigest, manifest, config: configBytes, layers };
}

export const DEFAULT_CODES = ['JDK11.0', 'JDK17.0', 'MVN3.8', 'MVN3.7', 'GRD7.0'];
export const DEFAULT_COMPOSITES = ['JDK11.0-MVN3.8-GRD7.0', 'JDK11.0-MVN3.7-GRD7.0', 'JDK17.0-MVN3.8-GRD7.0', 'JDK11.0-GRD7.0'];
/** Small on purpose (whole set ≈ 3 MB of blobs incl. busybox) so integration tests stay fast. */
const DEFAULT_SIZES: Record<string, number> = {
  JDK: 1024 * 1024,
  MVN: 200 * 1024,
  GRD: 512 * 1024,
};
const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** Env a package contributes: PATH with `<prefix>/bin` first, JAVA_HOME for JDK*. */
export function packageEnv(codes: string[]): string[] {
  const env = [`PATH=${[...codes.map((c) => `${packagePrefix(c)}/bin`), DEFAULT_PATH].join(':')}`];
  const jdk = codes.find((c) => c.startsWith('JDK'));
  if (jdk) env.push(`JAVA_HOME=${packagePrefix(jdk)}`);
  return env;
}

export interface FixtureSetOptions {
  /** Package codes. Default JDK11.0 JDK17.0 MVN3.8 MVN3.7 GRD7.0. */
  codes?: string[];
  /** Composite tags (codes joined by '-'). Default the four in DEFAULT_COMPOSITES. */
  composites?: string[];
  /** Repository of the composites. Default 'hostpull'. */
  namespace?: string;
  /** Data bytes per package code. Default by letters: JDK 1 MiB, MVN 200 KiB, GRD 512 KiB, else 256 KiB. */
  sizes?: Record<string, number>;
  /** Layer compression for every layer. Default 'gzip'. */
  compression?: 'gzip' | 'zstd' | 'none';
  /** Authorization header value for the registry. */
  auth?: string;
}

export interface FixtureSet {
  base: BuiltLayer;
  /** Package layer by code. */
  packages: Record<string, BuiltLayer>;
  /** Pushed images by key: 'base' (pkg/base:latest), each code (pkg/<code lower>:latest), each composite tag. */
  images: Record<string, PushedImage>;
  /** Prefix directory by code (`/opt/jdk-11.0`). */
  prefixes: Record<string, string>;
}

/**
 * Pushes the base image `pkg/base:latest`, one package image `pkg/<code lowercased>:latest` per
 * code (one layer) and each composite `<namespace>:<TAG>` = [base, packages in tag order], whose
 * layers are byte-identical to the package images' (same digests).
 */
export async function pushFixtureSet(registryUrl: string, opts: FixtureSetOptions = {}): Promise<FixtureSet> {
  const codes = opts.codes ?? DEFAULT_CODES;
  const composites = opts.composites ?? DEFAULT_COMPOSITES;
  const namespace = opts.namespace ?? 'hostpull';
  const compression = opts.compression ?? 'gzip';
  const pushOpts: PushOptions = opts.auth ? { auth: opts.auth } : {};
  const base = buildLayer(baseFiles(), { compression });
  const packages: Record<string, BuiltLayer> = {};
  const prefixes: Record<string, string> = {};
  for (const code of codes) {
    const letters = packageCommand(code).toUpperCase();
    const bytes = opts.sizes?.[code] ?? DEFAULT_SIZES[letters] ?? 256 * 1024;
    packages[code] = buildLayer(packageFiles(code, { bytes }), { compression });
    prefixes[code] = packagePrefix(code);
  }
  const images: Record<string, PushedImage> = {};
  images['base'] = await pushImage(registryUrl, 'pkg/base', 'latest', [base], { env: [`PATH=${DEFAULT_PATH}`], cmd: ['/bin/sh'] }, pushOpts);
  await Promise.all(
    codes.map(async (code) => {
      images[code] = await pushImage(
        registryUrl,
        `pkg/${code.toLowerCase()}`,
        'latest',
        [packages[code]!],
        { env: packageEnv([code]), cmd: ['/bin/sh'] },
        pushOpts,
      );
    }),
  );
  for (const tag of composites) {
    const parts = tag.split('-');
    const layers = parts.map((c) => {
      const l = packages[c];
      if (!l) throw new HostpullError('TEST_FIXTURE', `composite ${tag}: code ${c} is not among the fixture codes ${codes.join(', ')}`);
      return l;
    });
    images[tag] = await pushImage(registryUrl, namespace, tag, [base, ...layers], { env: packageEnv(parts), cmd: ['/bin/sh'] }, pushOpts);
  }
  return { base, packages, images, prefixes };
}
