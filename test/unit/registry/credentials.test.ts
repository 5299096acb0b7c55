import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { authFilesCredentials } from '../../../src/registry/auth/auth-files.js';
import { dockerConfigPath, parseDockerConfig } from '../../../src/registry/auth/docker-config.js';
import { normaliseRegistryKey, parseAuthEnv } from '../../../src/registry/auth/credentials.js';

const b64 = (s: string): string => Buffer.from(s).toString('base64');

describe('docker config', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'hostpull-dockercfg-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reads auth (base64, password with a colon) and username/password entries under any key shape', () => {
    const cfg = parseDockerConfig(
      JSON.stringify({
        auths: {
          'https://index.docker.io/v1/': { auth: b64('hub:pa:ss') },
          'http://Reg.Example:5000/': { username: 'u', password: 'p' },
          'only-token.example': { identitytoken: 'xyz' },
        },
        credHelpers: { 'gcr.io': 'gcloud', 'bad.example': 'x; rm -rf /' },
        credsStore: 'desktop',
      }),
    );
    expect(cfg.auths).toEqual({
      'docker.io': { username: 'hub', password: 'pa:ss' },
      'reg.example:5000': { username: 'u', password: 'p' },
    });
    expect(cfg.credHelpers).toEqual({ 'gcr.io': 'gcloud' });
    expect(cfg.credsStore).toBe('desktop');
  });

  it('respects DOCKER_CONFIG', () => {
    expect(dockerConfigPath({ DOCKER_CONFIG: '/x/y', HOME: '/h' })).toBe('/x/y/config.json');
    expect(dockerConfigPath({ HOME: '/h' })).toBe('/h/.docker/config.json');
  });

  it('looks credentials up from the file, and through a credential helper', async () => {
    // A fake docker-credential-test helper on PATH: echoes the server it was asked for.
    const bin = join(dir, 'bin');
    await import('node:fs/promises').then((fs) => fs.mkdir(bin, { recursive: true }));
    const helper = join(bin, 'docker-credential-test');
    await writeFile(helper, '#!/bin/sh\nread server\necho "{\\"ServerURL\\":\\"$server\\",\\"Username\\":\\"helper-user\\",\\"Secret\\":\\"s-$server\\"}"\n');
    await chmod(helper, 0o755);
    await writeFile(
      join(dir, 'config.json'),
      JSON.stringify({ auths: { '127.0.0.1:5000': { auth: b64('alice:secret') } }, credHelpers: { 'helped.example': 'test' } }),
    );
    const env = { DOCKER_CONFIG: dir, PATH: `${bin}:${process.env.PATH}` };
    const saved = process.env.PATH;
    process.env.PATH = env.PATH; // execFile resolves the helper on the current PATH
    try {
      const source = authFilesCredentials({ env, paths: [dockerConfigPath(env)] });
      expect(await source.get('127.0.0.1:5000')).toEqual({ username: 'alice', password: 'secret' });
      expect(await source.get('helped.example')).toEqual({ username: 'helper-user', password: 's-helped.example' });
      expect(await source.get('other.example')).toBeUndefined();
    } finally {
      process.env.PATH = saved;
    }
  });

  it('treats a missing config file as no credentials', async () => {
    const source = authFilesCredentials({ paths: [join(dir, 'nope', 'config.json')] });
    expect(await source.get('127.0.0.1:5000')).toBeUndefined();
  });
});

describe('HOSTPULL_REGISTRY_AUTH', () => {
  it('parses host=user:password pairs', () => {
    expect(parseAuthEnv('127.0.0.1:5000=alice:pa:ss=w, Reg.example=bob:x,broken,=a:b')).toEqual({
      '127.0.0.1:5000': { username: 'alice', password: 'pa:ss=w' },
      'reg.example': { username: 'bob', password: 'x' },
    });
    expect(parseAuthEnv(undefined)).toEqual({});
  });

  it('normalises registry keys', () => {
    expect(normaliseRegistryKey('https://index.docker.io/v1/')).toBe('docker.io');
    expect(normaliseRegistryKey('registry-1.docker.io')).toBe('docker.io');
    expect(normaliseRegistryKey('HTTP://localhost:5000/v2/')).toBe('localhost:5000');
  });
});
