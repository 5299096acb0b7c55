import { inUnmountOrder, listMountsUnder } from '../rootfs/index.js';
import { execTool } from './exec-tool.js';

/**
 * Unmounts whatever an interrupted earlier run left mounted under the work dir, before that dir
 * is reset: removing files through a live overlay would delete them from the layers below it.
 * umount(8), then a lazy one as a last resort. Returns the mount points it unmounted.
 */
export async function unmountBelow(dir: string, signal?: AbortSignal): Promise<string[]> {
  const points = inUnmountOrder(listMountsUnder(dir)).map((m) => m.mountPoint);
  for (const p of points) {
    await execTool('umount', [p], signal ? { signal } : {}).catch(() => execTool('umount', ['-l', p], signal ? { signal } : {}));
  }
  return points;
}
