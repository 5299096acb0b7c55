/**
 * `hostpull publish` stopped halfway (Ctrl-C, a service stop): it ends with the ABORTED error, and
 * the layer it was building, as big as the package, does not stay behind in the temporary directory.
 * A real CLI process, a real signal.
 */
import { constants } from 'node:os';
import { mkdir, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { collectChild, spawnCli } from '../../helpers/cli.js';
import { noise } from '../../helpers/noise.js';
import { useTempDir } from '../../helpers/tmp.js';

const leftovers = async (dir: string) => (await readdir(dir)).filter((n) => n.startsWith('hostpull-publish-'));

describe('hostpull publish, interrupted', () => {
  const tmp = useTempDir('publish-interrupt');
  let tree: string;

  beforeAll(async () => {
    tree = join(await tmp(), 'tree');
    await mkdir(join(tree, 'lib'), { recursive: true });
    // Incompressible: gzip takes a second or more over it, time enough to be stopped halfway.
    for (let i = 0; i < 6; i++) await writeFile(join(tree, 'lib', `part-${i}.bin`), noise(8 * 1024 * 1024, `part-${i}`));
  }, 60_000);

  it.each(['SIGTERM', 'SIGINT'] as const)('%s while the layer is being built: exits 128+signal (ABORTED) and leaves no temporary layer behind', async (sig) => {
    const dir = await tmp();
    const tmpdir = join(dir, 'tmp');
    await mkdir(tmpdir);
    const child = spawnCli(['--root', join(dir, 'root'), 'publish', tree, '--code', 'BIG1.0', '--prefix', '/opt/big', '--layout', join(dir, 'layout'), '--no-register'], {
      env: { TMPDIR: tmpdir },
    });
    const done = collectChild(child, { timeoutMs: 60_000 });
    // Stopped once the layer file has its first bytes.
    for (let i = 0; ; i++) {
      const [work] = await leftovers(tmpdir);
      const size = work ? await stat(join(tmpdir, work, 'layer.tar.gz')).then((s) => s.size, () => 0) : 0;
      if (size > 0) break;
      if (child.exitCode !== null || i > 600) throw new Error(`publish did not start building its layer: ${(await done).stderr}`);
      await new Promise((r) => setTimeout(r, 25));
    }
    child.kill(sig);
    const r = await done;
    expect(r.timedOut).toBe(false);
    // The shell's status for the signal: 143 for SIGTERM, 130 for SIGINT.
    expect(r.code).toBe(128 + constants.signals[sig]);
    expect(r.stderr).toContain(`interrupted by ${sig}`);
    expect(await leftovers(tmpdir)).toEqual([]);
  }, 90_000);
});
