import { open } from 'node:fs/promises';

/** fsync a directory so a rename into it survives a crash (POSIX: the entry lives in the dir). */
export async function fsyncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
