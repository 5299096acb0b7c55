import { randomBytes } from 'node:crypto';
import { mkdir, open, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { RuntimeSpec } from './spec-types.js';

/**
 * Writes `<bundleDir>/config.json` atomically: a temp file in the same directory, fsync, rename,
 * so a runtime (or a crash) never sees a half-written spec. Mode 0600: the spec holds the
 * environment, which often carries secrets.
 */
export async function writeBundle(bundleDir: string, spec: RuntimeSpec): Promise<void> {
  await mkdir(bundleDir, { recursive: true, mode: 0o700 });
  const target = join(bundleDir, 'config.json');
  const tmp = join(bundleDir, `.config.json.${randomBytes(6).toString('hex')}.tmp`);
  const fh = await open(tmp, 'wx', 0o600);
  try {
    await fh.writeFile(JSON.stringify(spec, null, 2) + '\n');
    await fh.sync();
    await fh.close();
    await rename(tmp, target);
  } catch (err) {
    await fh.close().catch(() => undefined);
    await rm(tmp, { force: true });
    throw err;
  }
  const dir = await open(bundleDir, 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}
