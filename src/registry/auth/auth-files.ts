import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { errnoCode, HostpullError } from '../../errors.js';
import type { Logger } from '../../log.js';
import { normaliseRegistryKey, splitRegistryKey, type Credential, type CredentialSource } from './credentials.js';
import { dockerConfigPath, parseDockerConfig, runCredentialHelper, type DockerConfig } from './docker-config.js';

/**
 * The registry credential files, in the order containers-auth.json(5) reads them, so that a
 * `podman login`, `skopeo login` or `docker login` done on this host serves hostpull as well:
 *
 * 1. the primary file, the one `hostpull login` writes: `$REGISTRY_AUTH_FILE` when set, else
 *    `$XDG_RUNTIME_DIR/containers/auth.json`, else `/run/containers/<uid>/auth.json` (where podman
 *    keeps root's when no runtime directory is set, as for a systemd service);
 * 2. the login session's runtime directory, `/run/user/<uid>/containers/auth.json`, and
 *    `/run/containers/<uid>/auth.json`, so a daemon started by systemd (no XDG_RUNTIME_DIR) finds
 *    a login made in a shell;
 * 3. `${XDG_CONFIG_HOME:-~/.config}/containers/auth.json`;
 * 4. the docker CLI's `config.json` (`$DOCKER_CONFIG`, else `~/.docker`).
 *
 * All share one format: `{"auths": {"host": {"auth": base64("user:password")}}}`, plus the docker
 * credential helpers (`credHelpers`, `credsStore`).
 */
export function authFileSearchPath(env: NodeJS.ProcessEnv = process.env, uid = process.getuid?.() ?? 0): string[] {
  const home = env.HOME || homedir();
  const paths = [
    primaryAuthFile(env, uid),
    `/run/user/${uid}/containers/auth.json`,
    `/run/containers/${uid}/auth.json`,
    join(env.XDG_CONFIG_HOME || join(home, '.config'), 'containers', 'auth.json'),
    dockerConfigPath(env),
  ];
  return [...new Set(paths)];
}

/** The file `hostpull login` writes and `logout` edits (see {@link authFileSearchPath}). */
export function primaryAuthFile(env: NodeJS.ProcessEnv = process.env, uid = process.getuid?.() ?? 0): string {
  if (env.REGISTRY_AUTH_FILE) return env.REGISTRY_AUTH_FILE;
  if (env.XDG_RUNTIME_DIR) return join(env.XDG_RUNTIME_DIR, 'containers', 'auth.json');
  return `/run/containers/${uid}/auth.json`;
}

export interface AuthFilesCredentialsOptions {
  env?: NodeJS.ProcessEnv;
  /** The files to read, in order. Default: {@link authFileSearchPath}. */
  paths?: readonly string[];
  /** Timeout for a `docker-credential-<helper> get` run. Default: 5000 ms. */
  helperTimeoutMs?: number;
  /**
   * How long an answer is reused. Default 30 s: a long-lived client (the daemon, the server) sees
   * a login or logout made meanwhile within that, without reading the files on every 401.
   */
  cacheMs?: number;
  logger?: Logger;
}

/**
 * Credentials from the registry credential files: for each file in order, its credential helper
 * for the host (`credHelpers`), its `credsStore`, then its `auths` entry; the first found wins. A
 * missing file is skipped; an unreadable or malformed one is skipped with a warning (the
 * registry's 401 then says what is missing).
 */
export function authFilesCredentials(options: AuthFilesCredentialsOptions = {}): CredentialSource {
  const env = options.env ?? process.env;
  const paths = options.paths ?? authFileSearchPath(env);
  const timeout = options.helperTimeoutMs ?? 5000;
  const cacheMs = options.cacheMs ?? 30_000;
  const cache = new Map<string, { at: number; answer: Promise<Credential | undefined> }>();

  const fromFile = async (path: string, key: string, signal?: AbortSignal): Promise<Credential | undefined> => {
    let config: DockerConfig;
    try {
      config = parseDockerConfig(await readFile(path, 'utf8'));
    } catch (err) {
      if (errnoCode(err) !== 'ENOENT' && errnoCode(err) !== 'ENOTDIR') options.logger?.warn({ path, err: (err as Error).message }, 'ignoring an unreadable registry credential file');
      return undefined;
    }
    const server = key === 'docker.io' ? 'https://index.docker.io/v1/' : key;
    for (const helper of [config.credHelpers[key], config.credsStore]) {
      if (!helper) continue;
      const cred = await runCredentialHelper(helper, server, timeout, signal);
      if (cred) return cred;
    }
    return config.auths[key];
  };

  const lookup = async (key: string, signal?: AbortSignal): Promise<Credential | undefined> => {
    for (const path of paths) {
      const cred = await fromFile(path, key, signal);
      if (cred) return cred;
    }
    return undefined;
  };

  return {
    get: (registry, signal) => {
      const key = normaliseRegistryKey(registry);
      const hit = cache.get(key);
      if (hit && Date.now() - hit.at < cacheMs) return hit.answer;
      const answer = lookup(key, signal);
      cache.set(key, { at: Date.now(), answer });
      return answer;
    },
  };
}

/** An auth file's JSON, whole (what hostpull does not know is kept as it is), or an empty one. */
async function readAuthFile(path: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return {};
    throw new HostpullError('AUTH_FILE_INVALID', `cannot read ${path}: ${(err as Error).message}`, { cause: err });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new HostpullError('AUTH_FILE_INVALID', `${path} is not valid JSON: ${(err as Error).message}`, {
      cause: err,
      hint: 'it was left as it is: fix it, or move it away and log in again',
    });
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new HostpullError('AUTH_FILE_INVALID', `${path} does not hold a JSON object`, { hint: 'it was left as it is: fix it, or move it away and log in again' });
  }
  return json as Record<string, unknown>;
}

/**
 * The `auths` entries that are this registry's own, in whatever spelling the file used
 * (`host:5000`, `http://host:5000/`, docker's `https://index.docker.io/v1/`). An entry for a
 * namespace on it (`quay.io/team`, a podman login scoped to repositories) is another login and
 * is never touched by a login or logout of the registry.
 */
function keysFor(auths: Record<string, unknown>, registry: string): string[] {
  const key = normaliseRegistryKey(registry);
  return Object.keys(auths).filter((k) => splitRegistryKey(k).path === '' && normaliseRegistryKey(k) === key);
}

/**
 * Writes the file whole to a temporary name and renames it over the old one, mode 0600 in a 0700
 * directory: a crash leaves the old file or the new one, never half of either.
 */
async function writeAuthFile(path: string, json: Record<string, unknown>): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.tmp-${randomBytes(4).toString('hex')}`;
  try {
    await writeFile(tmp, `${JSON.stringify(json, null, '\t')}\n`, { mode: 0o600, flag: 'wx' });
    await chmod(tmp, 0o600); // whatever the umask
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw new HostpullError('AUTH_FILE_INVALID', `cannot write ${path}: ${(err as Error).message}`, { cause: err });
  }
}

/** Stores `user:password` for the registry in the auth file at `path`, keeping every other entry. */
export async function storeCredential(path: string, registry: string, cred: Credential): Promise<void> {
  const json = await readAuthFile(path);
  const auths = typeof json.auths === 'object' && json.auths !== null && !Array.isArray(json.auths) ? { ...(json.auths as Record<string, unknown>) } : {};
  for (const k of keysFor(auths, registry)) delete auths[k];
  auths[normaliseRegistryKey(registry)] = { auth: Buffer.from(`${cred.username}:${cred.password}`).toString('base64') };
  await writeAuthFile(path, { ...json, auths });
}

/**
 * Removes the registry's entries (or, with `registry` undefined, all of them) from the auth file at
 * `path`. Returns how many entries were removed; a file without any is left untouched.
 */
export async function removeCredential(path: string, registry: string | undefined): Promise<number> {
  const json = await readAuthFile(path);
  const auths = typeof json.auths === 'object' && json.auths !== null && !Array.isArray(json.auths) ? { ...(json.auths as Record<string, unknown>) } : {};
  const gone = registry === undefined ? Object.keys(auths) : keysFor(auths, registry);
  if (gone.length === 0) return 0;
  for (const k of gone) delete auths[k];
  await writeAuthFile(path, { ...json, auths });
  return gone.length;
}

/** The first file of `paths` with an `auths` entry for the registry (not asking credential helpers). */
export async function fileWithCredential(paths: readonly string[], registry: string): Promise<string | undefined> {
  for (const path of paths) {
    try {
      if (parseDockerConfig(await readFile(path, 'utf8')).auths[normaliseRegistryKey(registry)]) return path;
    } catch {
      // missing or unreadable: not this one
    }
  }
  return undefined;
}
