import { spawnSync } from 'node:child_process';
import { chownSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lgetxattr } from '../../../src/native/index.js';
import { useStagedCli } from '../../helpers/staged-cli.js';
import { writeTar } from '../../helpers/tar-writer.js';

// An unprivileged apply: opaque dirs get user.overlay.opaque=y, whiteouts are char 0:0 where the
// kernel lets an unprivileged user create them (Linux ≥ 5.8), else overlayfs's xattr whiteouts
// (zero-size file + user.overlay.whiteout, parent user.overlay.opaque=x). Proven here through a
// real `userxattr` overlay mount.

const NOBODY = 65534;
/** The built CLI where nobody can run it (the checkout may be in a directory only root enters). */
const cli = useStagedCli();

/** A small layer with a whiteout and an opaque directory, applied with a non-root process's defaults. */
function whiteoutLayer(): Buffer {
  return writeTar([
    { name: 'etc/', type: 'dir' },
    { name: 'etc/.wh.gone', type: 'file' },
    { name: 'etc/kept', type: 'file', content: 'upper', uid: 0, gid: 0, mode: 0o644 },
    { name: 'd/', type: 'dir' },
    { name: 'd/.wh..wh..opq', type: 'file' },
    { name: 'd/new', type: 'file', content: 'new' },
  ]);
}
let dir: string;
let mnt: string | undefined;
let mounted = false;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'hp-unpack-rootless-'));
  chownSync(dir, NOBODY, NOBODY);
});
afterAll(() => {
  if (mounted && mnt) spawnSync('umount', [mnt]);
  rmSync(dir, { recursive: true, force: true });
});

describe('rootless whiteouts', () => {
  it('an unprivileged apply writes xattr whiteouts that a userxattr overlay honours', () => {
    const layer = join(dir, 'layer');
    mkdirSync(layer);
    chownSync(layer, NOBODY, NOBODY);
    // The layer, and the built applyLayer (staged where nobody can reach it), run as nobody.
    const tarFile = join(dir, 'layer.tar');
    writeFileSync(tarFile, whiteoutLayer());
    const unpack = pathToFileURL(join(cli().root, 'dist', 'unpack', 'index.js')).href;
    const script = [
      `import { createReadStream } from 'node:fs';`,
      `const { applyLayer } = await import(${JSON.stringify(unpack)});`,
      `const r = await applyLayer(createReadStream(process.argv[1]), { compression: 'none', target: process.argv[2] });`,
      `process.stdout.write(JSON.stringify(r));`,
    ].join('\n');
    const child = spawnSync(
      'setpriv',
      [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', '--', process.execPath, '--input-type=module', '-e', script, tarFile, layer],
      { cwd: cli().root, env: { ...process.env, HOME: dir }, encoding: 'utf8', timeout: 30_000 },
    );
    expect(child.status, child.stderr).toBe(0);
    const result = JSON.parse(child.stdout.slice(child.stdout.indexOf('{'))) as { whiteouts: string[]; ownedPaths: string[] };
    expect(result.whiteouts).toEqual(['d/.wh..wh..opq', 'etc/.wh.gone']);
    // What the layer hides (the opaque d, the whiteout etc/gone) counts as its own for the overlap check.
    expect(result.ownedPaths).toEqual(['d', 'd/new', 'etc/gone', 'etc/kept']);

    // Linux ≥ 5.8 lets unprivileged users mknod a 0:0 whiteout; elsewhere the xattr form is used.
    const gone = lstatSync(join(layer, 'etc/gone'));
    if (gone.isCharacterDevice()) {
      expect(gone.rdev).toBe(0);
    } else {
      expect([gone.isFile(), gone.size]).toEqual([true, 0]);
      expect(lgetxattr(join(layer, 'etc/gone'), 'user.overlay.whiteout')).not.toBeNull();
      expect(lgetxattr(join(layer, 'etc'), 'user.overlay.opaque')?.toString()).toBe('x');
    }
    expect(lgetxattr(join(layer, 'd'), 'user.overlay.opaque')?.toString()).toBe('y');
    // No chown to the archive's ids in a rootless store.
    expect(lstatSync(join(layer, 'etc/kept')).uid).toBe(NOBODY);

    const lower = join(dir, 'lower');
    mkdirSync(join(lower, 'etc'), { recursive: true });
    mkdirSync(join(lower, 'd'));
    writeFileSync(join(lower, 'etc/gone'), 'lower');
    writeFileSync(join(lower, 'etc/other'), 'lower');
    writeFileSync(join(lower, 'd/old'), 'lower');
    mnt = join(dir, 'mnt');
    mkdirSync(mnt);
    const m = spawnSync('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${layer}:${lower},userxattr`, mnt], { encoding: 'utf8' });
    expect(m.status, m.stderr).toBe(0);
    mounted = true;
    expect(readdirSync(join(mnt, 'etc')).sort()).toEqual(['kept', 'other']);
    expect(existsSync(join(mnt, 'etc/gone'))).toBe(false);
    expect(readdirSync(join(mnt, 'd'))).toEqual(['new']);
    expect(readFileSync(join(mnt, 'etc/kept'), 'utf8')).toBe('upper');
  });
});
