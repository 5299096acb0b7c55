import { rm } from 'node:fs/promises';
import { HostpullError } from '../errors.js';
import type { Logger } from '../log.js';
import { syscallErrno } from '../native/index.js';
import { performMount, unmountAllUnder } from '../rootfs/index.js';
import { buildRuntimeSpec, runContainer, type RunResult, type RuntimeSpec, writeBundle } from '../runtime/index.js';
import { rootlessUnavailable } from './check-rootless.js';
import type { RootlessRunRequest } from './protocol.js';

export interface RootlessChildOptions {
  /** Kills the container (see runContainer's `signal`). */
  signal?: AbortSignal;
  logger?: Logger;
  /** Called once the rootfs is mounted. */
  onMounted?: () => void;
}

/**
 * errnos with which overlayfs refuses a mount that it would accept from real root: EPERM (no
 * overlay in a user namespace, Linux < 5.11, or a lower dir this user cannot read), EINVAL
 * (`userxattr` unknown, Linux < 5.11). Anything else is an ordinary mount failure.
 */
const NOT_SUPPORTED_ERRNOS = new Set(['EPERM', 'EINVAL', 'ENODEV']);

/**
 * Only our own uid is mapped (to 0) in the namespace: a container user other than root would be
 * an id the kernel cannot represent, and runc's setgroups/setuid would fail with a bare EINVAL.
 * Supplementary groups other than 0 are dropped for the same reason.
 */
function checkUser(spec: RuntimeSpec, request: RootlessRunRequest): void {
  const user = spec.process.user;
  if (user.uid !== 0 || user.gid !== 0) {
    throw new HostpullError('ROOTLESS_USER_UNSUPPORTED', `rootless run maps only root (uid 0) into the container; the container user is ${user.uid}:${user.gid}`, {
      hint: 'run as root, or pass -u 0 to run the command as the container root (your own uid on the host)',
      details: { user: request.spec.user ?? request.spec.imageConfig.config?.User },
    });
  }
  if (user.additionalGids?.some((g) => g !== 0)) spec.process.user = { uid: 0, gid: 0 };
}

/**
 * The part of a rootless `hostpull run` that needs privilege, run as root of a private user and
 * mount namespace (see child-main.ts): mount the planned rootfs, build the runtime spec against it
 * (User and WorkingDir are resolved inside the rootfs, so only now), write the bundle and run the
 * container in the foreground on our inherited stdio. The spec gets its own user namespace with
 * our root mapped to 0 (so the container holds capabilities over its own namespaces, not over
 * this helper's mount namespace), and no cgroup rules: runc in a user namespace uses its
 * rootless cgroup manager, which ignores settings it cannot apply.
 *
 * The mount needs no unmounting on the way out: it lives in this process's mount namespace and
 * goes with it. It is still undone (and, unless `keep`, the container directory removed from
 * here, where overlay's mode-000 work dir is ours to delete) so nothing depends on timing.
 */
export async function runRootlessChild(request: RootlessRunRequest, opts: RootlessChildOptions = {}): Promise<RunResult> {
  const target = request.mount.target;
  try {
    try {
      performMount(request.mount);
    } catch (err) {
      const errno = syscallErrno(err);
      if (errno !== undefined && NOT_SUPPORTED_ERRNOS.has(errno)) {
        throw rootlessUnavailable(`overlay mount in the user namespace failed: ${(err as Error).message}`, err);
      }
      throw err;
    }
    opts.onMounted?.();
    const spec = buildRuntimeSpec({ ...request.spec, rootfsPath: target }, { rootless: true, hostUid: 0, hostGid: 0 });
    checkUser(spec, request);
    await writeBundle(request.bundleDir, spec);
    return await runContainer({
      runtime: request.runtime,
      bundleDir: request.bundleDir,
      containerId: request.containerId,
      stateRoot: request.stateRoot,
      tty: request.tty,
      stdio: 'inherit',
      keep: request.keep,
      ...(opts.signal ? { signal: opts.signal } : {}),
      ...(opts.logger ? { logger: opts.logger } : {}),
    });
  } finally {
    try {
      unmountAllUnder(target, { detach: true });
    } catch (err) {
      opts.logger?.warn({ target, err }, 'unmount in the rootless namespace failed');
    }
    if (!request.keep) await rm(request.bundleDir, { recursive: true, force: true }).catch(() => undefined);
  }
}
