/**
 * Configuration errors surface where they are made: `hostpull serve --base` (and the images of a
 * static catalog) may name the upstream's own host, since that is how a user who pushed there
 * writes it, and anything else is refused when the server starts, saying what form is expected —
 * not answered with a 503 for every composite later.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from '../../helpers/cli.js';
import { startCompositeServer } from '../../helpers/composite-server.js';
import { pushFixtureSet, type FixtureSet } from '../../helpers/fixtures.js';
import { useRegistry } from '../../helpers/registry.js';
import { useTempDir } from '../../helpers/tmp.js';

const registry = useRegistry();
const tmp = useTempDir('serve-config');

let fixtures: FixtureSet | undefined;
async function pushed(): Promise<FixtureSet> {
  fixtures ??= await pushFixtureSet(registry().url, { codes: ['JDK11.0', 'GRD7.0'], composites: [] });
  return fixtures;
}

/** The layer digests of composite `tag` as the server answers it. */
async function compositeLayers(url: string, tag: string): Promise<string[]> {
  const res = await fetch(`${url}/v2/hostpull/manifests/${tag}`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
  expect(res.status, await res.clone().text()).toBe(200);
  return ((await res.json()) as { layers: Array<{ digest: string }> }).layers.map((l) => l.digest);
}

describe('hostpull serve checks the images its configuration names at start', () => {
  it('takes --base and catalog images named with the upstream\'s own host as the upstream names them', async () => {
    const set = await pushed();
    const server = await startCompositeServer({ registryUrl: registry().url, dir: await tmp(), codes: ['JDK11.0', 'GRD7.0'], base: `${registry().host}/pkg/base:latest`, imagePrefix: `${registry().host}/` });
    try {
      expect(await compositeLayers(server.url, 'GRD7.0-JDK11.0')).toEqual([set.base.digest, set.packages['GRD7.0']!.digest, set.packages['JDK11.0']!.digest]);
    } finally {
      await server.stop();
    }
  });

  it.each([
    ['another registry', 'other.example:5000/pkg/base:latest', /--base "other\.example:5000\/pkg\/base:latest" names registry other\.example:5000, but the server reads images from its upstream/],
    ['no tag', 'pkg/base', /--base "pkg\/base" is not an image name: expected repository:tag or repository@sha256:…/],
    ['not a name', 'Pkg Base', /--base "Pkg Base" is not an image name/],
  ])('refuses --base naming %s at start (exit 2, the form expected)', async (_what, base, message) => {
    const r = await runCli(['--root', await tmp(), 'serve', '--listen', '127.0.0.1:0', '--upstream', registry().url, '--base', base], { timeoutMs: 20_000 });
    expect(r.timedOut).toBe(false);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(r.stderr).toContain('pkg/base:latest');
  });

  it('refuses a host-qualified --base over an OCI layout, which has no host', async () => {
    const root = await tmp();
    const r = await runCli(['--root', root, 'serve', '--listen', '127.0.0.1:0', '--base', `${registry().host}/pkg/base:latest`], { timeoutMs: 20_000 });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/the OCI layout \S+, which has no host/);
  });

  it('refuses at start a static catalog whose image names another registry', async () => {
    const dir = await tmp();
    const catalogFile = join(dir, 'catalog.json');
    await writeFile(catalogFile, JSON.stringify({ 'JDK11.0': { image: 'other.example:5000/pkg/jdk11.0:latest', prefix: '/opt/jdk-11.0' } }));
    const r = await runCli(['--root', dir, 'serve', '--listen', '127.0.0.1:0', '--upstream', registry().url, '--catalog', catalogFile], { timeoutMs: 20_000 });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/catalog entry JDK11\.0: image "other\.example:5000\/pkg\/jdk11\.0:latest" names registry other\.example:5000/);
  });
});
