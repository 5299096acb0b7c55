/** A username/password pair for one registry host. */
export interface Credential {
  username: string;
  password: string;
}

/**
 * Where the client finds credentials for a registry (`host[:port]` as written in references).
 * Implementations must only return credentials meant for exactly that host: the client sends them
 * to that registry (and to the token realm it designates), never anywhere else.
 */
export interface CredentialSource {
  get(registry: string, signal?: AbortSignal): Promise<Credential | undefined>;
}

/** Explicit credentials keyed by `host[:port]`. */
export function staticCredentials(map: Record<string, Credential>): CredentialSource {
  const normalised = new Map<string, Credential>();
  for (const [host, cred] of Object.entries(map)) normalised.set(normaliseRegistryKey(host), cred);
  return {
    get: async (registry) => normalised.get(normaliseRegistryKey(registry)),
  };
}

/** The first source that has credentials for the host wins. */
export function chainCredentials(...sources: CredentialSource[]): CredentialSource {
  return {
    get: async (registry, signal) => {
      for (const source of sources) {
        const cred = await source.get(registry, signal);
        if (cred) return cred;
      }
      return undefined;
    },
  };
}

/** No credentials at all (anonymous access only). */
export function noCredentials(): CredentialSource {
  return { get: async () => undefined };
}

export const AUTH_ENV = 'HOSTPULL_REGISTRY_AUTH';

/**
 * Parses `HOSTPULL_REGISTRY_AUTH=host=user:password[,host=user:password]`. The host is split at
 * the first `=`, the user at the first `:` (passwords may hold `:` and `=` but not `,`).
 */
export function parseAuthEnv(value: string | undefined): Record<string, Credential> {
  const out: Record<string, Credential> = {};
  if (!value) return out;
  for (const part of value.split(',')) {
    const entry = part.trim();
    if (!entry) continue;
    const eq = entry.indexOf('=');
    if (eq <= 0) continue;
    const host = entry.slice(0, eq).trim();
    const userPass = entry.slice(eq + 1);
    const colon = userPass.indexOf(':');
    if (colon <= 0) continue;
    out[normaliseRegistryKey(host)] = { username: userPass.slice(0, colon), password: userPass.slice(colon + 1) };
  }
  return out;
}

/** Credentials from `HOSTPULL_REGISTRY_AUTH` in the given environment. */
export function envCredentials(env: NodeJS.ProcessEnv = process.env): CredentialSource {
  return staticCredentials(parseAuthEnv(env[AUTH_ENV]));
}

const DOCKER_HUB_ALIASES = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io', 'registry.hub.docker.com']);

/**
 * `https://index.docker.io/v1/`, `http://host:5000`, `HOST:5000/` → `docker.io`, `host:5000`.
 * Docker config files key their entries in all of these shapes.
 */
export function normaliseRegistryKey(key: string): string {
  const k = splitRegistryKey(key).host.toLowerCase();
  return DOCKER_HUB_ALIASES.has(k) ? 'docker.io' : k;
}

/**
 * A credential key (or a registry as typed) as host and path: the scheme, trailing slashes and
 * docker's `/v1/` and `/v2/` dropped, so `https://index.docker.io/v1/` has path '' and podman's
 * namespace-scoped `quay.io/team` has path `team`.
 */
export function splitRegistryKey(key: string): { host: string; path: string } {
  const k = key.trim().replace(/^[a-z][a-z0-9+.-]*:\/\//i, '');
  const slash = k.indexOf('/');
  if (slash < 0) return { host: k, path: '' };
  return { host: k.slice(0, slash), path: k.slice(slash + 1).replace(/^(v1|v2)?\/*$/, '').replace(/\/+$/, '') };
}
