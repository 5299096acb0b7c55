import { mkdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { HostpullError } from '../errors.js';
import { downloadDebs, extractDebs, planDebs, type DebFile } from './apt.js';
import type { AptQueryCache } from './apt-query-cache.js';
import { buildKey, readMarker, writeMarker } from './build-marker.js';
import type { PackageSpec } from './package-specs.js';
import { relocateTree, type RelocateReport } from './relocate-tree.js';

export interface BuiltPackage {
  spec: PackageSpec;
  /** The relocated tree, published under spec.prefix. */
  dir: string;
  key: string;
  debs: string[];
  report: RelocateReport;
  /** Reused from an earlier run. */
  cached: boolean;
  ms: number;
  /** What the spec's finish step did, for the demo output. */
  finished?: string | undefined;
}

interface PackageMarker {
  key: string;
  debs: string[];
  report: RelocateReport;
  finished?: string | undefined;
}

export interface BuildPackageOptions {
  /** The demo work directory (debs/, stage/, pkgs/ below it). */
  work: string;
  /** Reuses apt's answers while its lists are unchanged. Default: ask apt every time. */
  aptCache?: AptQueryCache | undefined;
  signal?: AbortSignal;
}

/**
 * Builds one package directory from Debian packages: plan (versions), download, unpack into a
 * private stage, relocate into pkgs/<name>, drop the stage. Skipped when pkgs/<name>.json says
 * the same .deb files built it, which is what makes a second demo run quick.
 */
export async function buildPackage(spec: PackageSpec, options: BuildPackageOptions): Promise<BuiltPackage> {
  const t0 = performance.now();
  const { work, signal } = options;
  const dir = join(work, 'pkgs', spec.name);
  const markerFile = join(work, 'pkgs', `${spec.name}.json`);
  const ask = <T>(q: string, fn: () => Promise<T>) => (options.aptCache ? options.aptCache.get(q, fn) : fn());
  const names = await ask(`debs ${spec.code}`, () => spec.debs(signal));
  const plan = await ask<DebFile[]>(`plan ${names.join(' ')}`, () => planDebs(names, signal));
  const key = buildKey(`package ${spec.code} ${spec.source}${spec.finish ? ` ${spec.finish.id}` : ''}`, plan);
  const marker = await readMarker<PackageMarker>(markerFile);
  if (marker?.key === key && (await stat(join(dir, spec.mustHave)).catch(() => null))) {
    return { spec, dir, key, debs: marker.debs, report: marker.report, cached: true, ms: performance.now() - t0, finished: marker.finished };
  }

  const debDir = join(work, 'debs');
  const stage = join(work, 'stage', spec.name);
  await mkdir(debDir, { recursive: true });
  await rm(markerFile, { force: true });
  await rm(stage, { recursive: true, force: true });
  await rm(dir, { recursive: true, force: true });
  await mkdir(stage, { recursive: true });
  try {
    await downloadDebs(plan, debDir, signal);
    await extractDebs(plan.map((d) => join(debDir, d.file)), stage, signal);
    const report = await relocateTree({ stageRoot: stage, source: spec.source, out: dir });
    if (!(await stat(join(dir, spec.mustHave)).catch(() => null))) {
      throw new HostpullError('DEMO_BUILD_FAILED', `${spec.code}: ${spec.mustHave} is missing from ${dir} after relocating ${spec.source}`);
    }
    const finished = spec.finish ? await spec.finish.run(dir, signal) : undefined;
    const debs = plan.map((d) => d.file);
    await writeMarker(markerFile, { key, debs, report, finished } satisfies PackageMarker);
    return { spec, dir, key, debs, report, cached: false, ms: performance.now() - t0, finished };
  } finally {
    await rm(stage, { recursive: true, force: true });
  }
}
