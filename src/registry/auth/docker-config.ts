import { execFile } from 'node:child_process';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { normaliseRegistryKey, type Credential } from './credentials.js';

/** The parts of `~/.docker/config.json` that carry registry credentials. */
export interface DockerConfig {
  auths: Record<string, Credential>;
  credHelpers: Record<string, string>;
  credsStore?: string;
}

/** `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json` (as the docker CLI does). */
export function dockerConfigPath(env: NodeJS.ProcessEnv = process.env): string {
  const dir = env.DOCKER_CONFIG || join(env.HOME || homedir(), '.docker');
  return join(dir, 'config.json');
}

/**
 * Parses the JSON text of a docker config. `auths` entries carry either `auth` (base64 of
 * `user:password`) or `username`/`password`; entries with only an `identitytoken` (an OAuth
 * refresh token) are skipped: we do not implement the OAuth2 refresh flow.
 */
export function parseDockerConfig(text: string): DockerConfig {
  const json: unknown = JSON.parse(text);
  const out: DockerConfig = { auths: {}, credHelpers: {} };
  if (typeof json !== 'object' || json === null) return out;
  const root = json as Record<string, unknown>;
  if (typeof root.auths === 'object' && root.auths !== null) {
    for (const [key, raw] of Object.entries(root.auths as Record<string, unknown>)) {
      if (typeof raw !== 'object' || raw === null) continue;
      const entry = raw as Record<string, unknown>;
      let cred: Credential | undefined;
      if (typeof entry.auth === 'string' && entry.auth) {
        const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
        const colon = decoded.indexOf(':');
        if (colon > 0) cred = { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
      } else if (typeof entry.username === 'string' && typeof entry.password === 'string') {
        cred = { username: entry.username, password: entry.password };
      }
      if (cred) out.auths[normaliseRegistryKey(key)] = cred;
    }
  }
  if (typeof root.credHelpers === 'object' && root.credHelpers !== null) {
    for (const [key, helper] of Object.entries(root.credHelpers as Record<string, unknown>)) {
      if (typeof helper === 'string' && /^[A-Za-z0-9_.-]+$/.test(helper)) out.credHelpers[normaliseRegistryKey(key)] = helper;
    }
  }
  if (typeof root.credsStore === 'string' && /^[A-Za-z0-9_.-]+$/.test(root.credsStore)) out.credsStore = root.credsStore;
  return out;
}

/** Runs `docker-credential-<helper> get` with the server on stdin (docker-credential-helpers protocol). */
export function runCredentialHelper(helper: string, server: string, timeoutMs: number, signal?: AbortSignal): Promise<Credential | undefined> {
  return new Promise((resolve) => {
    const child = execFile(
      `docker-credential-${helper}`,
      ['get'],
      { timeout: timeoutMs, maxBuffer: 1 << 20, ...(signal ? { signal } : {}) },
      (err, stdout) => {
        // A missing helper, "credentials not found in native keychain" or a timeout all mean
        // "no credentials from here"; the registry's 401 then tells the user what to do.
        if (err) return resolve(undefined);
        try {
          const json = JSON.parse(stdout) as { Username?: unknown; Secret?: unknown };
          if (typeof json.Username !== 'string' || typeof json.Secret !== 'string') return resolve(undefined);
          // `<token>` marks an identity (OAuth refresh) token, which we do not support.
          if (json.Username === '<token>') return resolve(undefined);
          resolve({ username: json.Username, password: json.Secret });
        } catch {
          resolve(undefined);
        }
      },
    );
    child.stdin?.end(server);
  });
}
