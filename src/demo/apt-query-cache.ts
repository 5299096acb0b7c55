import { createHash } from 'node:crypto';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { readMarker, writeMarker } from './build-marker.js';

/** What apt's answers depend on: the downloaded package lists and the configured sources and pins. */
const APT_STATE = ['/var/lib/apt/lists', '/etc/apt/sources.list', '/etc/apt/sources.list.d', '/etc/apt/preferences', '/etc/apt/preferences.d'];

async function aptStateKey(): Promise<string> {
  const h = createHash('sha256');
  for (const p of APT_STATE) {
    const st = await stat(p).catch(() => null);
    if (!st) continue;
    const files = st.isDirectory() ? (await readdir(p)).filter((f) => f !== 'lock' && f !== 'partial').sort().map((f) => join(p, f)) : [p];
    for (const f of files) {
      const fst = await stat(f).catch(() => null);
      if (fst) h.update(`${f} ${fst.size} ${fst.mtimeMs}\n`);
    }
  }
  return h.digest('hex');
}

/**
 * Remembers apt's answers (candidate files, dependency closures) in `file` until the package
 * lists or the apt configuration change. Each apt invocation loads its whole cache (about 2 s on
 * this machine), and a warm demo run would otherwise spend most of its build step asking apt
 * questions whose answers cannot have changed.
 */
export class AptQueryCache {
  readonly #file: string;
  #state: Promise<{ key: string; answers: Record<string, unknown> }> | undefined;

  constructor(file: string) {
    this.#file = file;
  }

  #load(): Promise<{ key: string; answers: Record<string, unknown> }> {
    this.#state ??= (async () => {
      const key = await aptStateKey();
      const stored = await readMarker<{ key: string; answers: Record<string, unknown> }>(this.#file);
      return stored?.key === key ? stored : { key, answers: {} };
    })();
    return this.#state;
  }

  async get<T>(question: string, ask: () => Promise<T>): Promise<T> {
    const state = await this.#load();
    if (Object.hasOwn(state.answers, question)) return state.answers[question] as T;
    const answer = await ask();
    state.answers[question] = answer;
    await writeMarker(this.#file, state);
    return answer;
  }
}
