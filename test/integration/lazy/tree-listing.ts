import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const exec = promisify(execFile);

/** `find -xdev` of a tree with type, mode, owner, size, link target and content hash per entry: equal listings, equal trees. */
export async function treeListing(dir: string): Promise<string> {
  const { stdout } = await exec('sh', ['-c', `cd "$1" && find . -xdev -printf '%y %m %U:%G %s %p -> %l\\n' | LC_ALL=C sort && find . -xdev -type f -exec sha256sum {} + | LC_ALL=C sort -k2`, 'sh', dir], { maxBuffer: 64 * 1024 * 1024 });
  return stdout;
}
