import { HostpullError } from '../errors.js';

/**
 * syncfs(2) of the file system that holds `path`, through coreutils' `sync --file-system` (Node
 * has no syncfs, and the call can take seconds: a child process keeps it off the event loop and
 * the thread pool). Writes an unpack made are then on the disk, not only in the page cache.
 */
export async function syncFileSystem(path: string): Promise<void> {
  // Loaded on call: the CLI's startup snapshot may not hold node:child_process (scripts/bundle.mjs).
  const { execFile } = await import('node:child_process');
  await new Promise<void>((resolve, reject) => {
    execFile('sync', ['--file-system', path], (err, _stdout, stderr) => {
      if (!err) return resolve();
      reject(
        new HostpullError('STORE_SYNC_FAILED', `could not flush ${path} to disk: ${stderr.trim() || err.message}`, {
          cause: err,
          hint: 'check the disk (dmesg); without --sync-fs the layer is recorded without this flush',
        }),
      );
    });
  });
}
