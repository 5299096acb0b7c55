import { existsSync, readFileSync } from 'node:fs';
import { hostname as hostName } from 'node:os';
import { isAbsolute, resolve } from 'node:path';
import { HostpullError } from '../errors.js';
import type { ImageConfig } from '../oci/index.js';
import { checkContainerPath } from './container-path.js';
import { mergeEnv } from './env.js';
import { DEFAULT_CAPABILITIES, MASKED_PATHS, OCI_VERSION, READONLY_PATHS, defaultMounts, defaultOpenFilesLimit } from './spec-defaults.js';
import type { RuntimeMount, RuntimeSpec } from './spec-types.js';
import { resolveUser } from './user.js';

export interface BindMount {
  /** Absolute host path. */
  source: string;
  /** Absolute path inside the container (same checks as WorkingDir). */
  destination: string;
  /** Mount options; default `['rbind']`. Add `'ro'` for a read-only bind. */
  options?: string[];
}

/**
 * The container's network: `none` is a network namespace of its own with only loopback (the
 * default); `host` shares the host's namespace (podman's `--network host`), with the host's
 * /etc/resolv.conf and /etc/hosts bound read-only so names resolve as on the host.
 */
export type NetworkMode = 'none' | 'host';

/**
 * Writable scratch space of a read-only rootfs, as podman's `--read-only` gives it (where no -v
 * mounts the path): programs that write a pid file or a temporary file keep working.
 */
const READONLY_SCRATCH: readonly RuntimeMount[] = [
  { destination: '/tmp', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', 'mode=1777'] },
  { destination: '/var/tmp', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', 'mode=1777'] },
  { destination: '/run', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', 'mode=755'] },
];

/** Host files a `host` network container sees (where the host has them and no -v mounts the path). */
const HOST_NETWORK_FILES = ['/etc/resolv.conf', '/etc/hosts'];

export interface RuntimeSpecInput {
  /** Image config (Env, Entrypoint, Cmd, WorkingDir, User are used). */
  imageConfig: ImageConfig;
  /** An already-mounted rootfs; the spec's `root.path` is its absolute form. */
  rootfsPath: string;
  /** `run IMAGE CMD…`: replaces the image's Cmd; the Entrypoint is kept (Docker semantics). */
  args?: string[];
  /** `--entrypoint`: replaces the image's Entrypoint and, as in Docker, drops the image's Cmd. */
  entrypoint?: string[];
  /** `-e KEY=VAL`: added to / overriding the image's Env. */
  env?: string[];
  /** Allocate a terminal (`process.terminal`); adds TERM=xterm unless set. Default false. */
  tty?: boolean;
  /**
   * Initial terminal size with `tty` (e.g. from process.stdout.rows/columns). crun and runc ≥ 1.2
   * apply it before the process starts; runc 1.1 ignores it and resizes just after start.
   */
  consoleSize?: { height: number; width: number };
  /** Container id: used for the default hostname (its first 12 characters). */
  containerId?: string;
  /** Hostname; default: the container id's first 12 characters, else "hostpull". */
  hostname?: string;
  /** Mount the rootfs read-only, with tmpfs on /tmp, /var/tmp and /run. Default false. */
  readonlyRootfs?: boolean;
  /** Overrides the image's User (`uid`, `uid:gid`, `name`, `name:group`). */
  user?: string;
  /** Overrides the image's WorkingDir. */
  cwd?: string;
  /** Extra bind mounts. */
  mounts?: BindMount[];
  /** Default `none`. */
  network?: NetworkMode;
}

export interface BuildSpecOptions {
  /**
   * Rootless runtime (runc/crun run by a non-root user): adds a user namespace mapping container
   * root to `hostUid`/`hostGid` and leaves out cgroup device rules. Default false.
   */
  rootless?: boolean;
  /** Host uid mapped to container root when rootless. Default: process.getuid(). */
  hostUid?: number;
  /** Host gid mapped to container root when rootless. Default: process.getgid(). */
  hostGid?: number;
  /** The container's RLIMIT_NOFILE (soft = hard). Default: podman's (defaultOpenFilesLimit). */
  openFiles?: number;
  /** The host's name, which a `host` network container takes unless it is given one. Default: os.hostname(). */
  hostName?: string;
}

const HOSTNAME = /^[A-Za-z0-9]([A-Za-z0-9.-]{0,62})$/;

/** `name` if it is a valid host name (a label of letters, digits, dots and dashes), else HOSTNAME_INVALID. */
export function checkHostname(name: string): string {
  if (!HOSTNAME.test(name)) throw new HostpullError('HOSTNAME_INVALID', `hostname "${name}" is not a valid host name`, { hint: 'letters, digits, "." and "-", at most 63 characters, starting with a letter or digit' });
  return name;
}

function commandOf(input: RuntimeSpecInput): string[] {
  const cfg = input.imageConfig.config ?? {};
  const entrypoint = input.entrypoint ?? cfg.Entrypoint ?? [];
  // Docker: overriding the entrypoint resets the image's Cmd, which was written for the old one.
  const cmd = input.args ?? (input.entrypoint !== undefined ? [] : cfg.Cmd ?? []);
  const args = [...entrypoint, ...cmd];
  if (args.length === 0 || args[0] === '') {
    throw new HostpullError('NO_COMMAND', 'the image has no Entrypoint or Cmd and no command was given', {
      hint: 'pass a command after --, e.g. `hostpull run IMAGE -- sh`',
    });
  }
  if (args.some((a) => a.includes('\0'))) throw new HostpullError('NO_COMMAND', 'a command argument contains NUL');
  return args;
}

function bindMounts(input: RuntimeSpecInput): RuntimeMount[] {
  const given = input.mounts ?? [];
  const hostFiles: BindMount[] =
    input.network === 'host'
      ? HOST_NETWORK_FILES.filter((f) => existsSync(f) && !given.some((m) => m.destination === f)).map((f) => ({ source: f, destination: f, options: ['rbind', 'nosuid', 'nodev', 'noexec', 'ro'] }))
      : [];
  return [...hostFiles, ...given].map((m) => {
    if (!isAbsolute(m.source)) throw new HostpullError('MOUNT_INVALID', `mount source "${m.source}" is not an absolute path`);
    const destination = checkContainerPath(m.destination, 'mount destination', 'MOUNT_INVALID', input.rootfsPath);
    const options = m.options && m.options.length > 0 ? m.options : ['rbind'];
    return { destination, type: 'bind', source: m.source, options };
  });
}

function scratchMounts(input: RuntimeSpecInput): RuntimeMount[] {
  if (!input.readonlyRootfs) return [];
  const bound = new Set((input.mounts ?? []).map((m) => m.destination));
  return READONLY_SCRATCH.filter((m) => !bound.has(m.destination)).map((m) => ({ ...m, options: [...m.options!] }));
}

/**
 * Builds an OCI runtime-spec 1.0.2 `config.json` object from an image config, following what
 * `runc spec` and Docker produce.
 *
 * No seccomp profile: Docker's default is a ~400-syscall allow-list tied to kernel and libseccomp
 * versions; an outdated copy breaks workloads (EPERM on new syscalls such as clone3 — the glibc
 * 2.34 breakage of 2021), and maintaining one is out of scope for now. The baseline here is
 * namespaces (a fresh netns with only loopback), Docker's reduced capability set, masked/readonly
 * /proc paths and noNewPrivileges.
 */
export function buildRuntimeSpec(input: RuntimeSpecInput, opts: BuildSpecOptions = {}): RuntimeSpec {
  const rootless = opts.rootless ?? false;
  const tty = input.tty ?? false;
  const rootfsPath = resolve(input.rootfsPath);
  const cfg = input.imageConfig.config ?? {};

  const args = commandOf(input);
  const cwd = checkContainerPath(input.cwd ?? (cfg.WorkingDir || '/'), 'working directory', 'CWD_INVALID', rootfsPath);
  const user = resolveUser(rootfsPath, input.user ?? cfg.User);
  const env = mergeEnv(cfg.Env, input.env, { tty, home: user.home });

  const hostname = checkHostname(input.hostname ?? defaultHostname(input, opts));
  const openFiles = opts.openFiles ?? defaultOpenFilesLimit(rootless, readTextOrUndefined);

  const caps = [...DEFAULT_CAPABILITIES];
  const spec: RuntimeSpec = {
    ociVersion: OCI_VERSION,
    process: {
      terminal: tty,
      ...(tty && input.consoleSize ? { consoleSize: { ...input.consoleSize } } : {}),
      user: user.additionalGids.length > 0 ? { uid: user.uid, gid: user.gid, additionalGids: user.additionalGids } : { uid: user.uid, gid: user.gid },
      args,
      env,
      cwd,
      capabilities: { bounding: caps, effective: [...caps], permitted: [...caps] },
      rlimits: [{ type: 'RLIMIT_NOFILE', hard: openFiles, soft: openFiles }],
      noNewPrivileges: true,
    },
    root: { path: rootfsPath, readonly: input.readonlyRootfs ?? false },
    hostname,
    mounts: [...defaultMounts(rootless), ...scratchMounts(input), ...bindMounts(input)],
    linux: {
      // A fresh network namespace has only loopback: the safe default (no bridge or slirp yet);
      // `host` leaves the namespace out, so the container shares the host's.
      namespaces: [{ type: 'pid' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }, ...(input.network === 'host' ? [] : [{ type: 'network' as const }])],
      maskedPaths: [...MASKED_PATHS],
      readonlyPaths: [...READONLY_PATHS],
    },
  };
  if (rootless) {
    const hostUid = opts.hostUid ?? process.getuid?.() ?? 0;
    const hostGid = opts.hostGid ?? process.getgid?.() ?? 0;
    spec.linux.namespaces.push({ type: 'user' });
    // One id mapped: without newuidmap/subuid ranges an unprivileged user can map only itself.
    spec.linux.uidMappings = [{ containerID: 0, hostID: hostUid, size: 1 }];
    spec.linux.gidMappings = [{ containerID: 0, hostID: hostGid, size: 1 }];
  } else {
    // Deny every device by default; runc/crun add the allow rules for the default /dev nodes.
    spec.linux.resources = { devices: [{ allow: false, access: 'rwm' }] };
  }
  return spec;
}

/**
 * The name a container gets unless --hostname says: the host's, when it shares the host's network
 * (podman and Docker do the same: a service there is reached by that name), else the first 12
 * characters of its id. A host name that is no valid container host name falls back to the id's.
 */
function defaultHostname(input: RuntimeSpecInput, opts: BuildSpecOptions): string {
  const own = input.containerId ? input.containerId.slice(0, 12) : 'hostpull';
  if (input.network !== 'host') return own;
  const host = opts.hostName ?? hostName();
  return HOSTNAME.test(host) ? host : own;
}

function readTextOrUndefined(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}
