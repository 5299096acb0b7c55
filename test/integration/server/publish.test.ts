import { execFile } from 'node:child_process';
import { chmod, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LayoutUpstream } from '../../../src/server/layout-upstream.js';
import { publishPackage } from '../../../src/publish/publish.js';
import { CatalogClient } from '../../../src/publish/catalog-client.js';
import { startServer, type RunningServer } from '../../../src/server/serve.js';

const exec = promisify(execFile);
const TOKEN = 'publish-test-token-0123456789';

describe('hostpull publish', () => {
  let tmp: string;
  let layout: string;
  let server: RunningServer;

  async function tree(root: string): Promise<void> {
    await mkdir(join(root, 'bin'), { recursive: true });
    await mkdir(join(root, 'lib', 'deep'.repeat(30)), { recursive: true });
    await writeFile(join(root, 'bin', 'tool'), '#!/bin/sh\necho tool\n');
    await chmod(join(root, 'bin', 'tool'), 0o755);
    await writeFile(join(root, 'lib', 'data.bin'), Buffer.alloc(300_000, 7));
    await writeFile(join(root, 'lib', 'deep'.repeat(30), 'long-name-file.txt'), 'x');
    await writeFile(join(root, 'lib', 'zeta'), 'z');
    await writeFile(join(root, 'lib', 'Alpha'), 'a');
    await symlink('../lib/data.bin', join(root, 'bin', 'data'));
  }

  beforeAll(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'hostpull-publish-test-'));
    layout = join(tmp, 'layout');
    await writeFile(join(tmp, 'token'), TOKEN);
    server = await startServer({ port: 0, layout, tokenFile: join(tmp, 'token'), cacheTtlMs: 100 });
  });

  afterAll(async () => {
    await server?.close();
    await rm(tmp, { recursive: true, force: true });
  });

  it('gives the same digest for the same tree, even copied elsewhere', async () => {
    const a = join(tmp, 'a');
    const b = join(tmp, 'b');
    await tree(a);
    await new Promise((r) => setTimeout(r, 20));
    await tree(b);
    const upstream = new LayoutUpstream({ dir: layout });
    const common = { code: 'TOOL1.0', prefix: '/opt/tool-1.0', env: { TOOL_HOME: '/opt/tool-1.0' }, pathAdd: ['/opt/tool-1.0/bin'], repository: 'pkg/tool', tag: '1.0', upstream };
    const first = await publishPackage({ ...common, dir: a });
    const second = await publishPackage({ ...common, dir: b, server: { url: server.url, token: TOKEN } });
    expect(second.manifestDigest).toBe(first.manifestDigest);
    expect(second.layerDigest).toBe(first.layerDigest);
    expect(second.registered).toBe(true);

    const { stdout } = await exec('tar', ['-tvzf', join(layout, 'blobs', 'sha256', first.layerDigest.slice(7)), '--numeric-owner']);
    const lines = stdout.trim().split('\n');
    const names = lines.map((l) => l.split(/\s+/).slice(5).join(' '));
    expect(names.slice(0, 4)).toEqual(['opt/', 'opt/tool-1.0/', 'opt/tool-1.0/bin/', 'opt/tool-1.0/bin/data -> ../lib/data.bin']);
    expect(names).toContain(`opt/tool-1.0/lib/${'deep'.repeat(30)}/long-name-file.txt`);
    expect(names.indexOf('opt/tool-1.0/lib/Alpha')).toBeLessThan(names.indexOf('opt/tool-1.0/lib/zeta'));
    for (const l of lines) expect(l).toMatch(/ 0\/0 .* 2020-01-01 00:00 /);
    expect(lines.find((l) => l.endsWith('bin/tool'))).toMatch(/^-rwxr-xr-x/);
  });

  it('registers the package so the server composes it', async () => {
    const catalog = await new CatalogClient({ server: server.url }).list();
    expect(catalog.get('TOOL1.0')).toMatchObject({ image: 'pkg/tool:1.0', prefix: '/opt/tool-1.0', pathAdd: ['/opt/tool-1.0/bin'], digest: expect.stringMatching(/^sha256:/) });
    const { stdout } = await exec('skopeo', ['inspect', '--tls-verify=false', `docker://${server.host}/hostpull:TOOL1.0`]);
    expect((JSON.parse(stdout) as { Env: string[] }).Env).toContain('TOOL_HOME=/opt/tool-1.0');
  });

  it('fails to register without the token and says how to fix it', async () => {
    const dir = join(tmp, 'c');
    await tree(dir);
    const upstream = new LayoutUpstream({ dir: layout });
    await expect(publishPackage({ dir, code: 'TOOL2.0', prefix: '/opt/tool-2.0', upstream, server: { url: server.url } })).rejects.toThrow(/HTTP 401/);
  });
});
