import { readdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { HostpullError } from '../errors.js';
import { execTool } from './exec-tool.js';
import { resolveInStage } from './relocate-tree.js';

export interface LibraryCheckOptions {
  /** The base rootfs whose loader and libraries are used. */
  rootfs: string;
  /** The package directory. */
  pkgDir: string;
  /** ELF files of the package to check (relative to pkgDir). */
  files: readonly string[];
  /** Package directories the loader may search besides the base (dlopen'ed siblings such as libjvm.so). */
  libDirs: readonly string[];
  signal?: AbortSignal;
}

/** The JVM's own libraries a plain `java` run (and so Maven) loads: what the base must satisfy. */
export const JDK_CORE_ELF = ['bin/java', 'lib/libjli.so', 'lib/server/libjvm.so', 'lib/libjava.so', 'lib/libjimage.so', 'lib/libzip.so', 'lib/libnio.so', 'lib/libnet.so', 'lib/libverify.so'];

const LOADERS = ['/lib64/ld-linux-x86-64.so.2', '/lib/ld-linux-aarch64.so.1'];

/**
 * Checks that every shared library the given programs need resolves inside the base (or the
 * package itself), using the base's own dynamic loader in `--list` mode. The loader would still
 * fall back to the host's /lib for a library the base lacks, so a dependency that resolves
 * outside the base and the package counts as missing, exactly as it would be in the container.
 * Returns nothing, throws DEMO_BUILD_FAILED naming the library and the program that needs it.
 */
export async function checkSharedLibraries(options: LibraryCheckOptions): Promise<void> {
  let loader: string | undefined;
  for (const l of LOADERS) {
    const real = await resolveInStage(options.rootfs, l);
    if (real) {
      loader = join(options.rootfs, real);
      break;
    }
  }
  if (!loader) throw new HostpullError('DEMO_BUILD_FAILED', `no dynamic loader in the base ${options.rootfs}`);
  const multiarch = (await readdir(join(options.rootfs, 'usr/lib'))).filter((d) => d.endsWith('-linux-gnu')).map((d) => join(options.rootfs, 'usr/lib', d));
  const allowed = [resolve(options.rootfs), resolve(options.pkgDir)];
  const libraryPath = [...multiarch, ...options.libDirs.map((d) => join(options.pkgDir, d))].join(':');
  const problems: string[] = [];
  for (const file of options.files) {
    let out: string;
    try {
      out = (await execTool(loader, ['--library-path', libraryPath, '--list', join(options.pkgDir, file)], options.signal ? { signal: options.signal } : {})).stdout;
    } catch (err) {
      problems.push(`${file}: ${(err as Error).message.split('\n').slice(-1)[0]}`);
      continue;
    }
    for (const line of out.split('\n')) {
      const m = /^\s*(\S+) => (.*?)(?: \(0x[0-9a-f]+\))?$/.exec(line);
      if (!m) continue;
      const [, soname, where] = m;
      if (where === 'not found') problems.push(`${file} needs ${soname}: not found`);
      else if (!allowed.some((a) => resolve(where!).startsWith(`${a}/`))) problems.push(`${file} needs ${soname}: only the host has it (${where})`);
    }
  }
  if (problems.length > 0) {
    throw new HostpullError('DEMO_BUILD_FAILED', `the base ${options.rootfs} lacks libraries the package needs:\n  ${problems.join('\n  ')}`, {
      hint: 'add the Debian package that ships them to BASE_DEBS in src/demo/build-base.ts',
    });
  }
}
