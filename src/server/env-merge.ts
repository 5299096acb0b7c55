import { HostpullError } from '../errors.js';
import { DEFAULT_PATH } from '../oci/index.js';

export interface PackageEnv {
  code: string;
  /** Variables the package contributes: its image config's Env (minus PATH) overlaid with the catalog's env. */
  env: Record<string, string>;
  /** Directories prepended to PATH. */
  pathAdd: string[];
}

/** Parses `K=V` strings (image config Env) into a map; later entries win, as in a shell. */
export function parseEnvList(list: readonly string[] | null | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of list ?? []) {
    const eq = item.indexOf('=');
    if (eq <= 0) continue;
    out[item.slice(0, eq)] = item.slice(eq + 1);
  }
  return out;
}

/**
 * Merges the base environment with the packages' (given in canonical order). PATH is the
 * packages' pathAdd directories in canonical order, then the base PATH. Any other variable set by
 * two packages to different values is a conflict: neither order is right, so we refuse and name
 * both code names. A package may override a base variable (that is what layering it on means).
 * The result is sorted by name after PATH so equal inputs give equal bytes.
 */
export function mergeEnv(baseEnv: Record<string, string>, packages: readonly PackageEnv[]): string[] {
  const merged: Record<string, string> = { ...baseEnv };
  delete merged.PATH;
  const setBy = new Map<string, string>();
  for (const pkg of packages) {
    for (const [name, value] of Object.entries(pkg.env)) {
      if (name === 'PATH') continue;
      const other = setBy.get(name);
      if (other !== undefined && merged[name] !== value) {
        throw new HostpullError('ENV_CONFLICT', `${other} and ${pkg.code} set ${name} to different values (${JSON.stringify(merged[name])} vs ${JSON.stringify(value)})`, {
          hint: 'these packages cannot be combined; put them in one exclusivity group or rename the variable',
          details: { variable: name, codeNames: [other, pkg.code] },
        });
      }
      setBy.set(name, pkg.code);
      merged[name] = value;
    }
  }
  const pathDirs: string[] = [];
  for (const pkg of packages) for (const dir of pkg.pathAdd) if (!pathDirs.includes(dir)) pathDirs.push(dir);
  const basePath = baseEnv.PATH ?? DEFAULT_PATH;
  const path = [...pathDirs, ...(basePath ? [basePath] : [])].join(':');
  return [`PATH=${path}`, ...Object.keys(merged).sort().map((k) => `${k}=${merged[k]}`)];
}
