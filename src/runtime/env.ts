import { HostpullError } from '../errors.js';
import { DEFAULT_PATH } from '../oci/index.js';

const ENV_KEY = /^[^=\0]+$/;

function split(entry: string, what: string): [string, string] {
  const eq = entry.indexOf('=');
  const key = eq === -1 ? entry : entry.slice(0, eq);
  if (eq <= 0 || !ENV_KEY.test(key) || entry.includes('\0')) {
    throw new HostpullError('ENV_INVALID', `${what} "${entry}" is not KEY=VALUE with a non-empty KEY`, {
      hint: 'pass environment as -e KEY=VALUE',
    });
  }
  return [key, entry.slice(eq + 1)];
}

/**
 * Merges the image's Env with `-e` overrides: an override replaces the image's value in place
 * (keeping the image's order, like Docker's `ReplaceOrAppendEnvValues`), new keys are appended.
 * Adds PATH when absent (execvp in the runtime needs it), HOME when the user has one, and
 * TERM=xterm with a terminal — the defaults Docker applies.
 */
export function mergeEnv(
  imageEnv: readonly string[] | null | undefined,
  overrides: readonly string[] | undefined,
  defaults: { tty: boolean; home?: string | undefined },
): string[] {
  const merged = new Map<string, string>();
  for (const e of imageEnv ?? []) {
    const [k, v] = split(e, 'image Env entry');
    merged.set(k, v);
  }
  for (const e of overrides ?? []) {
    const [k, v] = split(e, 'environment override');
    merged.set(k, v);
  }
  if (!merged.has('PATH')) merged.set('PATH', DEFAULT_PATH);
  if (!merged.has('HOME')) merged.set('HOME', defaults.home ?? '/');
  if (defaults.tty && !merged.has('TERM')) merged.set('TERM', 'xterm');
  return [...merged].map(([k, v]) => `${k}=${v}`);
}
