// synthesizeComposites(registry, entries, base, tags): starts an in-process `hostpull serve` over
// the registry with a static catalog (`entries`: code name → catalog entry), asks it for each
// composite tag (it synthesises the manifest and pushes config and manifest into the registry
// under `hostpull:<tag>`), checks the registry now serves the same digest, and returns
// { tag: manifest digest }. Shared by prepare.mjs (run.sh) and snapshotter.sh.
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const repo = new URL('../../', import.meta.url).pathname;

export async function synthesizeComposites(registry, entries, base, tags) {
  const { startServer } = await import(join(repo, 'dist/server/serve.js'));
  const work = await mkdtemp(join(tmpdir(), 'hostpull-peers-synth-'));
  let server;
  try {
    await writeFile(join(work, 'catalog.json'), JSON.stringify({ entries }));
    server = await startServer({ upstream: `http://${registry}`, port: 0, catalogFile: join(work, 'catalog.json'), base });
    const digests = {};
    for (const tag of tags) {
      const res = await fetch(`${server.url}/v2/hostpull/manifests/${tag}`, { method: 'HEAD' });
      if (res.status !== 200) throw new Error(`server answered ${res.status} for ${tag}`);
      digests[tag] = res.headers.get('docker-content-digest');
    }
    for (const tag of tags) {
      const res = await fetch(`http://${registry}/v2/hostpull/manifests/${tag}`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
      const body = Buffer.from(await res.arrayBuffer());
      const digest = `sha256:${createHash('sha256').update(body).digest('hex')}`;
      if (res.status !== 200 || digest !== digests[tag]) throw new Error(`registry has ${tag} as ${res.status} ${digest}, server said ${digests[tag]}`);
    }
    return digests;
  } finally {
    await server?.close();
    await rm(work, { recursive: true, force: true });
  }
}
