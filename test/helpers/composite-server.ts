/**
 * `hostpull serve` as a child process over a test registry, with a static catalog of the fixture
 * packages (pushFixtureSet's `pkg/<code>:latest` images): composites are synthesised on request,
 * with the layer annotations real nodes get. Stopped by its pid.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { packagePrefix } from './fixtures.js';
import { spawnServe } from './serve-cli.js';

export interface CompositeServer {
  /** `127.0.0.1:PORT` */
  host: string;
  url: string;
  stop(): Promise<void>;
}

/**
 * Writes catalog.json into `dir` for `codes` and serves composites of them over `registryUrl`.
 * `base` is the --base flag (default `pkg/base:latest`); `imagePrefix` goes before each catalog
 * entry's `pkg/<code>:latest` (e.g. the registry's host).
 */
export async function startCompositeServer(opts: { registryUrl: string; dir: string; codes: string[]; base?: string; imagePrefix?: string }): Promise<CompositeServer> {
  const catalog: Record<string, unknown> = {};
  for (const code of opts.codes) catalog[code] = { image: `${opts.imagePrefix ?? ''}pkg/${code.toLowerCase()}:latest`, prefix: packagePrefix(code), pathAdd: [`${packagePrefix(code)}/bin`] };
  const catalogFile = join(opts.dir, 'catalog.json');
  await writeFile(catalogFile, JSON.stringify(catalog));
  const { child, url } = await spawnServe(['--root', join(opts.dir, 'server')], ['--upstream', opts.registryUrl, '--base', opts.base ?? 'pkg/base:latest', '--catalog', catalogFile]);
  return {
    url,
    host: url.replace(/^http:\/\//, ''),
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    },
  };
}
