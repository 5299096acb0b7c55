import { statSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { HostpullError } from '../errors.js';
import type { BindMount } from './build-runtime-spec.js';
import { checkContainerPath } from './container-path.js';

/** What `-v SRC:DST:OPTIONS` accepts after the second colon. */
const VOLUME_OPTIONS = new Set(['ro', 'rw']);

/**
 * `-v, --volume HOST:CONTAINER[:ro|rw]`, as podman spells it, into a bind mount for the runtime
 * spec. The host side is a path (absolute, or relative to `cwd` when it starts with `.`): a bare
 * name would be a named volume to podman, which hostpull has not got, so it is refused rather
 * than taken for a directory of that name. The host path must exist: podman refuses a missing
 * one too, and creating it (Docker's old habit) turns a typo into an empty directory that the
 * container then writes into unseen.
 *
 * Binds are nosuid and nodev whatever the host mount is: a host directory given to a container
 * must not become a way in for set-id programs or device nodes. Recursive (`rbind`), as in
 * podman and Docker, so mounts below the host path come along.
 */
export function parseVolume(spec: string, cwd: string): BindMount {
  const fail = (why: string, hint?: string) =>
    new HostpullError('MOUNT_INVALID', `-v ${spec}: ${why}`, { hint: hint ?? 'expected HOST-PATH:CONTAINER-PATH[:ro|rw], e.g. -v "$PWD":/src:ro', details: { volume: spec } });
  const parts = spec.split(':');
  if (parts.length < 2 || parts.length > 3) throw fail('expected two or three fields separated by ":"');
  const [source, destination, options = ''] = parts as [string, string, string?];
  if (source === '' || destination === '') throw fail('a field is empty');
  if (!isAbsolute(source) && !source.startsWith('.')) {
    throw fail(`"${source}" is not a host path (hostpull has no named volumes)`, 'give the host directory as an absolute path, or relative starting with ./');
  }
  const hostPath = resolve(cwd, source);
  let found: boolean;
  try {
    found = statSync(hostPath, { throwIfNoEntry: false }) !== undefined;
  } catch (err) {
    throw fail(`cannot look at ${hostPath}: ${(err as Error).message}`);
  }
  if (!found) throw fail(`${hostPath} does not exist`, 'create it first (hostpull does not create host directories), or check the path');
  const mode = new Set(options === '' ? [] : options.split(','));
  for (const o of mode) if (!VOLUME_OPTIONS.has(o)) throw fail(`unknown option "${o}"`, 'the options are ro (read-only) or rw (the default)');
  if (mode.has('ro') && mode.has('rw')) throw fail('both ro and rw');
  const target = checkContainerPath(destination, `-v ${spec}: container path`, 'MOUNT_INVALID');
  if (target === '/') throw fail('cannot mount over the container\'s root directory');
  return { source: hostPath, destination: target, options: ['rbind', 'nosuid', 'nodev', ...(mode.has('ro') ? ['ro'] : [])] };
}

/** Every `-v` of one run: each parsed, and no container path mounted twice. */
export function parseVolumes(specs: readonly string[], cwd: string): BindMount[] {
  const mounts = specs.map((s) => parseVolume(s, cwd));
  const seen = new Map<string, string>();
  specs.forEach((spec, i) => {
    const dest = mounts[i]!.destination;
    const earlier = seen.get(dest);
    if (earlier !== undefined) throw new HostpullError('MOUNT_INVALID', `-v ${spec}: ${dest} is already mounted by -v ${earlier}`, { details: { volume: spec } });
    seen.set(dest, spec);
  });
  return mounts;
}
