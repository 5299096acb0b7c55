/**
 * The built CLI, staged where another user can run it. Tests that run hostpull as nobody (65534)
 * cannot use the checkout itself when it sits in a directory only its owner may enter (a clone in
 * root's home, mode 0700): this copies what `node dist/cli/main.js` needs — package.json, dist/,
 * native/build/ and the runtime dependencies of node_modules (not the dev ones, nor sqlite's
 * sources and objects) — into a fresh world-readable directory under the system temp dir.
 * Copies, not hardlinks: making a hardlinked file readable would change the checkout's file.
 */
import { chmodSync, cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, sep } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { HostpullError } from '../../src/errors.js';
import { REPO_ROOT } from './cli.js';

export interface StagedCli {
  /** The staged checkout (package.json, dist/, native/, node_modules/). */
  root: string;
  /** `<root>/dist/cli/main.js`. */
  entry: string;
  remove(): void;
}

/** Build and test leftovers of better-sqlite3 that loading it never reads (26 of its 28 MB). */
const SKIP = /^better-sqlite3[\\/](deps|src|build[\\/](?!Release[\\/]better_sqlite3\.node$|Release$))/;

/** Top-level packages that `npm install --omit=dev` would install. */
function runtimePackages(): string[] {
  const lock = JSON.parse(readFileSync(join(REPO_ROOT, 'node_modules', '.package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean; devOptional?: boolean }> };
  return Object.entries(lock.packages)
    .filter(([path, p]) => path.startsWith('node_modules/') && !p.dev && !p.devOptional && !path.slice('node_modules/'.length).includes('node_modules/'))
    .map(([path]) => path.slice('node_modules/'.length));
}

/** Read access for everyone on files, read and search on directories. */
function openUp(dir: string): void {
  chmodSync(dir, 0o755);
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) openUp(p);
    else if (e.isFile()) chmodSync(p, (statSync(p).mode & 0o111) !== 0 ? 0o755 : 0o644);
  }
}

export function stageCli(): StagedCli {
  const entry = join(REPO_ROOT, 'dist', 'cli', 'main.js');
  try {
    statSync(entry);
  } catch {
    throw new HostpullError('TEST_CLI_NOT_BUILT', `${entry} does not exist`, { hint: 'run `npm run build:ts` first' });
  }
  const root = mkdtempSync(join(tmpdir(), 'hostpull-staged-cli-'));
  cpSync(join(REPO_ROOT, 'package.json'), join(root, 'package.json'));
  cpSync(join(REPO_ROOT, 'dist'), join(root, 'dist'), { recursive: true });
  cpSync(join(REPO_ROOT, 'native', 'build'), join(root, 'native', 'build'), { recursive: true });
  const modules = join(REPO_ROOT, 'node_modules');
  for (const pkg of runtimePackages()) {
    cpSync(join(modules, pkg), join(root, 'node_modules', pkg), {
      recursive: true,
      filter: (src) => !SKIP.test(relative(modules, src).split(sep).join('/')),
    });
  }
  openUp(root);
  return { root, entry: join(root, 'dist', 'cli', 'main.js'), remove: () => rmSync(root, { recursive: true, force: true }) };
}

/** vitest: stages the CLI before the file's tests and removes it after them. */
export function useStagedCli(): () => StagedCli {
  let staged: StagedCli | undefined;
  beforeAll(() => {
    staged = stageCli();
  });
  afterAll(() => staged?.remove());
  return () => {
    if (!staged) throw new HostpullError('TEST_CLI_NOT_STAGED', 'useStagedCli() must be called at the top of a describe block or file');
    return staged;
  };
}
