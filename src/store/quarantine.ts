import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, renameSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { errnoCode } from '../errors.js';
import type { StoreLayout } from './layout.js';

/**
 * Where a blob file or layer directory found corrupt goes: out of its content-addressed place
 * (so nothing takes it for good content again) but kept for a look until the next `gc` or
 * `verify --repair`. Moving is a rename inside the store's filesystem, so it is atomic and cheap,
 * and a process that has the file open (or a mounted overlay using the directory) keeps working.
 */
export class Quarantine {
  readonly #layout: StoreLayout;

  constructor(layout: StoreLayout) {
    this.#layout = layout;
  }

  /** Moves `path` into quarantine/ under a name made of `label`; returns the new path, or undefined if `path` was gone. */
  moveIn(path: string, label: string): string | undefined {
    mkdirSync(this.#layout.quarantineDir, { recursive: true, mode: 0o700 });
    const dest = join(this.#layout.quarantineDir, `${label.replace(/[^A-Za-z0-9._-]+/g, '-')}-${Date.now()}-${randomBytes(3).toString('hex')}`);
    try {
      renameSync(path, dest);
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return undefined;
      throw err;
    }
    return dest;
  }

  /** Names in quarantine/. */
  list(): string[] {
    try {
      return readdirSync(this.#layout.quarantineDir).sort();
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return [];
      throw err;
    }
  }

  /** Deletes everything in quarantine/; returns how many entries went. */
  async purge(): Promise<number> {
    const names = this.list();
    for (const name of names) await rm(join(this.#layout.quarantineDir, name), { recursive: true, force: true });
    return names.length;
  }
}
