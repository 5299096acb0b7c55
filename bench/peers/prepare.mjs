#!/usr/bin/env node
// prepare.mjs REGISTRY_HOST:PORT [--layers DIR]
// Pushes the peer benchmark's images into a running registry with the bench library from the
// project's build (dist/), then lets an in-process `hostpull serve` synthesise the composites,
// which it pushes into the registry under `hostpull:<tag>`. Every tool then pulls the very same
// manifests and blobs from the registry. Prints {tags: {TAG: digest}, layers: {...}}.
//
// Without --layers: scaled-down versions of ../shared/bench/peers images (there 346 MB
// unpacked): same shape, a few thousand files less, about 45 MB of payload so one run takes a
// couple of minutes. With --layers DIR: the full-size layers that ../shared/bench/peers/
// make-images.sh built into DIR (<name>.tar.gz + <name>.json for base, JDK11.0, JDK17.0, MVN3.8,
// MVN3.7, GRD7.0; each package owns /opt/<code>), streamed from their files.
import { createReadStream, readFileSync } from 'node:fs';
import { join } from 'node:path';

const repo = new URL('../../', import.meta.url).pathname;
// The bench folder's face exports only `hostpull bench`; its image builders are imported from their modules.
const { BenchImageBuilder, BENCH_REPOS, BASE_TAG, pushImage } = await import(join(repo, 'dist/bench/images.js'));
const { buildBlob, packageDir } = await import(join(repo, 'dist/bench/content.js'));
const { catalogIndex } = await import(join(repo, 'dist/bench/catalog.js'));
const { tarEntry } = await import(join(repo, 'dist/bench/tar.js'));
const { RegistryClient } = await import(join(repo, 'dist/registry/index.js'));
const { synthesizeComposites } = await import('./synthesize-composites.mjs');

const registry = process.argv[2];
const layersFlag = process.argv.indexOf('--layers');
const layersDir = layersFlag > 0 ? process.argv[layersFlag + 1] : undefined;
if (!registry || (layersFlag > 0 && !layersDir)) {
  console.error('usage: prepare.mjs HOST:PORT [--layers DIR]');
  process.exit(2);
}
// Canonical (sorted) tags: the server pushes each composite upstream under its canonical tag.
// The first three are the pull steps; run.sh --run also uses the fourth.
const TAGS = ['GRD7.0-JDK11.0-MVN3.8', 'GRD7.0-JDK11.0-MVN3.7', 'GRD7.0-JDK17.0-MVN3.8', 'GRD7.0-JDK17.0-MVN3.7'];
const MB = 1_000_000;
const v = (pkg, version, index, bytes, files) => ({ code: `${pkg}${version}`, package: pkg, version, index, bytes, files });
// Sizes keep the originals' proportions (JDK 194 MB / 4,000 files, MVN 10.6 MB / 900, GRD 131 MB / 300) at about 1/10.
const catalog = {
  seed: 11,
  baseBytes: 1 * MB,
  packages: [
    { name: 'JDK', versions: [v('JDK', '11.0', 0, 19 * MB, 400), v('JDK', '17.0', 1, 20 * MB, 440)] },
    { name: 'MVN', versions: [v('MVN', '3.7', 0, 1.06 * MB, 90), v('MVN', '3.8', 1, 1.06 * MB, 90)] },
    { name: 'GRD', versions: [v('GRD', '7.0', 0, 13 * MB, 30)] },
  ],
};
const FULL_CODES = ['JDK11.0', 'JDK17.0', 'MVN3.8', 'MVN3.7', 'GRD7.0'];
const client = new RegistryClient({ retries: 1 });

/** Pushes the generated, scaled-down layers; returns catalog entries and layer facts. */
async function pushGenerated() {
  const versions = catalogIndex(catalog);
  const builder = new BenchImageBuilder(catalog, versions);
  // A second base layer with the host's static busybox, so every peer can run `/bin/busybox echo`
  // in the composites (run.sh --run times the first output of a container).
  const shell = buildBlob([
    tarEntry({ name: 'bin/' }),
    tarEntry({ name: 'bin/busybox', data: readFileSync('/bin/busybox'), mode: 0o755 }),
    tarEntry({ name: 'tmp/', mode: 0o1777 }),
  ]);
  await pushImage(client, registry, BENCH_REPOS.base, BASE_TAG, [builder.base, shell], ['PATH=/usr/bin:/bin']);
  const entries = {};
  const layers = { base: { digest: builder.base.digest, size: builder.base.size }, shell: { digest: shell.digest, size: shell.size } };
  for (const [code, pv] of versions) {
    const layer = builder.packageLayer(code);
    layers[code] = { digest: layer.digest, size: layer.size };
    await pushImage(client, registry, BENCH_REPOS.package(pv.package), pv.version, [layer], []);
    entries[code] = { image: `${BENCH_REPOS.package(pv.package)}:${pv.version}`, prefix: `/${packageDir(code)}`, pathAdd: [`/${packageDir(code)}/bin`], group: pv.package };
  }
  return { entries, layers };
}

/** A layer that make-images.sh built, as a bench blob whose bytes are read from its file when pushed. */
function builtLayer(name) {
  const meta = JSON.parse(readFileSync(join(layersDir, `${name}.json`), 'utf8'));
  return { digest: meta.digest, diffId: meta.diff_id, size: meta.size, blob: () => createReadStream(join(layersDir, `${name}.tar.gz`)) };
}

/** Pushes the full-size layers as base + one image per package; returns catalog entries and layer facts. */
async function pushBuiltLayers() {
  const base = builtLayer('base');
  await pushImage(client, registry, BENCH_REPOS.base, BASE_TAG, [base], ['PATH=/usr/bin:/bin']);
  const entries = {};
  const layers = { base: { digest: base.digest, size: base.size } };
  for (const code of FULL_CODES) {
    const layer = builtLayer(code);
    const pkg = code.replace(/[0-9.]+$/, '');
    const version = code.slice(pkg.length);
    layers[code] = { digest: layer.digest, size: layer.size };
    await pushImage(client, registry, BENCH_REPOS.package(pkg), version, [layer], []);
    entries[code] = { image: `${BENCH_REPOS.package(pkg)}:${version}`, prefix: `/opt/${code}`, pathAdd: [`/opt/${code}/bin`], group: pkg };
  }
  return { entries, layers };
}

try {
  const { entries, layers } = layersDir ? await pushBuiltLayers() : await pushGenerated();
  const tags = await synthesizeComposites(registry, entries, `${BENCH_REPOS.base}:${BASE_TAG}`, TAGS);
  process.stdout.write(`${JSON.stringify({ registry, tags, layers }, null, 2)}\n`);
} finally {
  await client.close();
}
