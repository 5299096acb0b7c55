/**
 * `--sync-fs` through a real registry: every layer an unpack writes is flushed with coreutils'
 * `sync --file-system` while it is still in its staging directory, before its row exists; a
 * flush that fails fails the pull and records nothing. The `sync` on PATH is a shim that logs
 * what it was asked, what the directory held then, and then runs the real one (or fails).
 */
import { execFileSync } from 'node:child_process';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ContentStore } from '../../../src/store/content-store.js';
import { runCli } from '../../helpers/cli.js';
import { pushFixtureSet } from '../../helpers/fixtures.js';
import { startRegistry, type TestRegistry } from '../../helpers/registry.js';
import { makeTempDir, removeTempDir } from '../../helpers/tmp.js';

let registry: TestRegistry;
let dir: string;
const TAG = 'JDK11.0-MVN3.8';

beforeAll(async () => {
  registry = await startRegistry();
  await pushFixtureSet(registry.url, { codes: ['JDK11.0', 'MVN3.8'], composites: [TAG] });
  dir = await makeTempDir('sync-fs');
  const real = execFileSync('sh', ['-c', 'command -v sync'], { encoding: 'utf8' }).trim();
  // Logs "<args> | <entries in the directory>" and runs the real sync,
  // unless SYNC_SHIM_FAIL is set.
  await writeFile(
    join(dir, 'sync'),
    `#!/bin/sh
entries=$(ls -A "$2" | wc -l)
echo "$* | $entries" >> "$SYNC_SHIM_LOG"
if [ -n "$SYNC_SHIM_FAIL" ]; then echo "sync: error syncing '$2': Input/output error" >&2; exit 1; fi
exec ${real} "$@"
`,
    { mode: 0o755 },
  );
});

afterAll(async () => {
  await registry?.stop();
  if (dir) await removeTempDir(dir);
});

async function pullWith(name: string, args: string[], env: Record<string, string> = {}) {
  const root = join(dir, name);
  const log = join(dir, `${name}.log`);
  await writeFile(log, '');
  const r = await runCli(['--root', root, '--server', registry.host, ...args, 'pull', TAG, '--no-daemon'], {
    env: { PATH: `${dir}:${process.env.PATH}`, SYNC_SHIM_LOG: log, ...env },
  });
  const lines = (await readFile(log, 'utf8')).split('\n').filter(Boolean);
  return { r, root, lines };
}

describe('--sync-fs', () => {
  it('flushes every unpacked layer while it is staged, before its row', async () => {
    const { r, root, lines } = await pullWith('on', ['--sync-fs']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(lines).toHaveLength(3); // base, JDK, Maven
    for (const line of lines) {
      const [args, entries] = line.split(' | ');
      expect(args).toMatch(new RegExp(`^--file-system ${join(root, 'layers')}/staging-\\d+-[0-9a-f]+$`));
      expect(Number(entries)).toBeGreaterThan(0); // the unpack had written the layer's files
    }
    const store = await ContentStore.open(root);
    try {
      expect(store.layers.list()).toHaveLength(3);
    } finally {
      store.close();
    }
  });

  it('is off by default, and HOSTPULL_SYNC_FS turns it on (=0 or =false leaves it off)', async () => {
    expect((await pullWith('off', [])).lines).toEqual([]);
    for (const [name, value] of [['zero', '0'], ['false', 'false']] as const) {
      const off = await pullWith(name, [], { HOSTPULL_SYNC_FS: value });
      expect(off.r.code).toBe(0);
      expect(off.lines).toEqual([]);
    }
    const env = await pullWith('env', [], { HOSTPULL_SYNC_FS: '1' });
    expect(env.r.code).toBe(0);
    expect(env.lines).toHaveLength(3);
  });

  it('a flush that fails fails the pull: no layer recorded, no staging directory left', async () => {
    const { r, root, lines } = await pullWith('fail', ['--sync-fs'], { SYNC_SHIM_FAIL: '1' });
    expect(lines.length).toBeGreaterThan(0);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/could not flush .*layers\/staging-.* to disk: sync: error syncing/);
    expect(r.stderr).toContain('hint: check the disk');
    const store = await ContentStore.open(root);
    try {
      expect(store.layers.list()).toEqual([]);
    } finally {
      store.close();
    }
    expect((await readdir(join(root, 'layers'))).filter((n) => n.startsWith('staging-'))).toEqual([]);
  });
});
