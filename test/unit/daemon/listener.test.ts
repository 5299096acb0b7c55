import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { listenUnixHttp } from '../../../src/daemon/listener.js';

// Records, at the moment the group is given, which socket paths already exist: the final path
// must not, or a client could connect while the socket is still root's alone.
const seenAtChown = vi.hoisted(() => [] as { path: string; finalExists: boolean }[]);
const finalPaths = vi.hoisted(() => new Set<string>());
vi.mock('node:fs/promises', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:fs/promises')>();
  return {
    ...real,
    chown: async (path: string, uid: number, gid: number) => {
      for (const final of finalPaths) seenAtChown.push({ path, finalExists: existsSync(final) });
      return real.chown(path, uid, gid);
    },
  };
});

const NOGROUP = 65534;
const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'hostpull-listener-'));
  dirs.push(dir);
  return dir;
}

function getOver(socketPath: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path: '/' }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve(body));
    });
    req.on('error', reject);
    req.end();
  });
}

const handler = (_req: unknown, res: { end(body: string): void }) => res.end('ok');

describe('listenUnixHttp', () => {
  it.runIf(process.getuid?.() === 0)('with a group, the socket appears at its path already owned by that group, and no temporary name stays', async () => {
    const dir = await tempDir();
    const path = join(dir, 'd.sock');
    finalPaths.add(path);
    const listener = await listenUnixHttp({ path, handler, mode: 0o660, group: NOGROUP });
    finalPaths.delete(path);
    expect(seenAtChown).toEqual([{ path: expect.not.stringMatching(/\/d\.sock$/), finalExists: false }]);
    try {
      const st = await stat(path);
      expect(st.isSocket()).toBe(true);
      expect(st.gid).toBe(NOGROUP);
      expect(st.mode & 0o777).toBe(0o660);
      expect(await readdir(dir)).toEqual(['d.sock']);
      expect(await getOver(path)).toBe('ok');
    } finally {
      await listener.close();
    }
    expect(await readdir(dir)).toEqual([]);
  });

  it.runIf(process.getuid?.() === 0)('with a group, a file that took the path meanwhile is kept and the listen fails', async () => {
    const dir = await tempDir();
    const path = join(dir, 'd.sock');
    await writeFile(path, 'not ours');
    await expect(listenUnixHttp({ path, handler, mode: 0o660, group: NOGROUP })).rejects.toMatchObject({ code: 'EEXIST' });
    expect(await readFile(path, 'utf8')).toBe('not ours');
    expect(await readdir(dir)).toEqual(['d.sock']);
  });

  it.runIf(process.getuid?.() === 0)('with a group and a path too long for a temporary name beside it, the socket still gets its group', async () => {
    const dir = await tempDir();
    const path = join(dir, 's'.repeat(106 - dir.length - 1)); // fits sun_path; `.<name>.<pid>` beside it would not
    expect(Buffer.byteLength(path)).toBe(106);
    const listener = await listenUnixHttp({ path, handler, mode: 0o660, group: NOGROUP });
    try {
      expect((await stat(path)).gid).toBe(NOGROUP);
      expect(await getOver(path)).toBe('ok');
    } finally {
      await listener.close();
    }
  });

  it('without a group, the socket has the mode asked for and answers', async () => {
    const dir = await tempDir();
    const path = join(dir, 'd.sock');
    const listener = await listenUnixHttp({ path, handler, mode: 0o600 });
    try {
      expect((await stat(path)).mode & 0o777).toBe(0o600);
      expect(await getOver(path)).toBe('ok');
    } finally {
      await listener.close();
    }
    expect(await readdir(dir)).toEqual([]);
  });
});
