import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { HostpullError } from '../../../src/errors.js';
import { authFileSearchPath, authFilesCredentials, fileWithCredential, primaryAuthFile, removeCredential, storeCredential } from '../../../src/registry/auth/auth-files.js';

const b64 = (s: string): string => Buffer.from(s).toString('base64');
const dirs: string[] = [];
let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'hostpull-authfiles-'));
  dirs.push(dir);
});
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function failure(p: Promise<unknown>): Promise<HostpullError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (err instanceof HostpullError) return err;
  throw new Error(`expected a HostpullError, got ${String(err)}`);
}

describe('where the auth files are', () => {
  it('reads the primary file first, then the runtime dirs, ~/.config/containers and the docker config', () => {
    const env = { HOME: '/h', XDG_RUNTIME_DIR: '/run/user/1000' };
    expect(primaryAuthFile(env, 1000)).toBe('/run/user/1000/containers/auth.json');
    expect(authFileSearchPath(env, 1000)).toEqual([
      '/run/user/1000/containers/auth.json',
      '/run/containers/1000/auth.json',
      '/h/.config/containers/auth.json',
      '/h/.docker/config.json',
    ]);
  });

  it('without XDG_RUNTIME_DIR (a systemd service) the primary file is /run/containers/UID/auth.json, and a login shell\'s is still read', () => {
    const env = { HOME: '/root', XDG_CONFIG_HOME: '/cfg', DOCKER_CONFIG: '/dk' };
    expect(primaryAuthFile(env, 0)).toBe('/run/containers/0/auth.json');
    expect(authFileSearchPath(env, 0)).toEqual(['/run/containers/0/auth.json', '/run/user/0/containers/auth.json', '/cfg/containers/auth.json', '/dk/config.json']);
  });

  it('REGISTRY_AUTH_FILE replaces the primary file only', () => {
    const env = { HOME: '/h', REGISTRY_AUTH_FILE: '/etc/hp/auth.json', XDG_RUNTIME_DIR: '/run/user/5' };
    expect(primaryAuthFile(env, 5)).toBe('/etc/hp/auth.json');
    expect(authFileSearchPath(env, 5).slice(0, 2)).toEqual(['/etc/hp/auth.json', '/run/user/5/containers/auth.json']);
  });
});

describe('authFilesCredentials', () => {
  it('takes the first file that has the host, in order, under any key spelling', async () => {
    const a = join(dir, 'a.json');
    const b = join(dir, 'b.json');
    await writeFile(a, JSON.stringify({ auths: { 'https://reg.example:5000/v2/': { auth: b64('first:one') } } }));
    await writeFile(b, JSON.stringify({ auths: { 'reg.example:5000': { auth: b64('second:two') }, 'other.example': { username: 'o', password: 'p:q' } } }));
    const source = authFilesCredentials({ paths: [join(dir, 'missing.json'), a, b] });
    expect(await source.get('reg.example:5000')).toEqual({ username: 'first', password: 'one' });
    expect(await source.get('other.example')).toEqual({ username: 'o', password: 'p:q' });
    expect(await source.get('none.example')).toBeUndefined();
  });

  it('skips a malformed file with a warning and goes on to the next', async () => {
    const bad = join(dir, 'bad.json');
    const good = join(dir, 'good.json');
    await writeFile(bad, '{ not json');
    await writeFile(good, JSON.stringify({ auths: { 'r.example': { auth: b64('u:p') } } }));
    const warnings: unknown[] = [];
    const logger = { warn: (o: unknown) => warnings.push(o) } as never;
    expect(await authFilesCredentials({ paths: [bad, good], logger }).get('r.example')).toEqual({ username: 'u', password: 'p' });
    expect(warnings).toEqual([expect.objectContaining({ path: bad })]);
  });

  it('sees a login made after an earlier lookup once its answer is older than cacheMs', async () => {
    const path = join(dir, 'auth.json');
    const cached = authFilesCredentials({ paths: [path] });
    const fresh = authFilesCredentials({ paths: [path], cacheMs: 0 });
    expect(await cached.get('r.example')).toBeUndefined();
    expect(await fresh.get('r.example')).toBeUndefined();
    await storeCredential(path, 'r.example', { username: 'u', password: 'p' });
    expect(await cached.get('r.example')).toBeUndefined();
    expect(await fresh.get('r.example')).toEqual({ username: 'u', password: 'p' });
  });
});

describe('storeCredential / removeCredential', () => {
  it('writes 0600 in a 0700 directory it creates, as base64 user:password under the normalised host', async () => {
    const path = join(dir, 'run', 'containers', 'auth.json');
    await storeCredential(path, 'HTTPS://Reg.Example:5000/', { username: 'alice', password: 'pa:ss' });
    expect(JSON.parse(await readFile(path, 'utf8'))).toEqual({ auths: { 'reg.example:5000': { auth: b64('alice:pa:ss') } } });
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect((await stat(join(dir, 'run', 'containers'))).mode & 0o777).toBe(0o700);
    expect(await fileWithCredential([join(dir, 'x.json'), path], 'reg.example:5000')).toBe(path);
  });

  it('keeps every other entry and key of the file, and replaces the host\'s entry in whatever spelling it had', async () => {
    const path = join(dir, 'auth.json');
    const before = {
      auths: { 'http://r.example/': { auth: b64('old:old') }, 'q.example': { auth: b64('q:q'), identitytoken: 'tok' } },
      credHelpers: { 'gcr.io': 'gcloud' },
      psFormat: 'table',
    };
    await writeFile(path, JSON.stringify(before));
    await storeCredential(path, 'r.example', { username: 'new', password: 'new' });
    expect(JSON.parse(await readFile(path, 'utf8'))).toEqual({ ...before, auths: { 'q.example': before.auths['q.example'], 'r.example': { auth: b64('new:new') } } });
    expect(await removeCredential(path, 'r.example')).toBe(1);
    expect(JSON.parse(await readFile(path, 'utf8'))).toEqual({ ...before, auths: { 'q.example': before.auths['q.example'] } });
    expect(await removeCredential(path, 'r.example')).toBe(0);
    expect(await removeCredential(path, undefined)).toBe(1);
    expect(JSON.parse(await readFile(path, 'utf8'))).toEqual({ ...before, auths: {} });
  });

  it("never touches a login scoped to a namespace of the registry (podman's quay.io/team), and takes docker's /v1/ spelling as the registry's", async () => {
    const path = join(dir, 'auth.json');
    const scoped = { auth: b64('team:t') };
    await writeFile(path, JSON.stringify({ auths: { 'quay.io/team': scoped, 'https://quay.io/v1/': { auth: b64('old:o') } } }));
    await storeCredential(path, 'quay.io', { username: 'me', password: 'p' });
    expect(JSON.parse(await readFile(path, 'utf8')).auths).toEqual({ 'quay.io/team': scoped, 'quay.io': { auth: b64('me:p') } });
    expect(await removeCredential(path, 'quay.io')).toBe(1);
    expect(JSON.parse(await readFile(path, 'utf8')).auths).toEqual({ 'quay.io/team': scoped });
  });

  it('refuses to change a file that is not a JSON object, and leaves it as it was', async () => {
    for (const text of ['{ "auths": ', '[1, 2]']) {
      const path = join(dir, `broken-${text.length}.json`);
      await writeFile(path, text);
      const err = await failure(storeCredential(path, 'r.example', { username: 'u', password: 'p' }));
      expect(err.code).toBe('AUTH_FILE_INVALID');
      expect(err.message).toContain(path);
      expect(err.hint).toMatch(/left as it is/);
      expect(await readFile(path, 'utf8')).toBe(text);
      expect((await failure(removeCredential(path, 'r.example'))).code).toBe('AUTH_FILE_INVALID');
    }
  });

  it('a removal from a file that does not exist removes nothing and creates nothing', async () => {
    const path = join(dir, 'nothing', 'auth.json');
    expect(await removeCredential(path, 'r.example')).toBe(0);
    await expect(stat(join(dir, 'nothing'))).rejects.toThrow(/ENOENT/);
    await mkdir(join(dir, 'nothing'));
  });
});
