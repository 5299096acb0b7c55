import { readdir } from 'node:fs/promises';
import { errnoCode } from '../errors.js';

/** The names in `dir`, or none when it does not exist (a store part not created yet). */
export async function readDirOrEmpty(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return [];
    throw err;
  }
}
