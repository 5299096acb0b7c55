import { chmod, copyFile, lstat, mkdir, readdir, readlink, symlink } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { HostpullError } from '../errors.js';

export interface RelocateOptions {
  /** Directory standing for `/` of the unpacked Debian packages. */
  stageRoot: string;
  /** Absolute path of the tree inside the stage, e.g. /usr/lib/jvm/java-17-openjdk-amd64. */
  source: string;
  /** Directory to fill: becomes the package prefix (e.g. /opt/jdk-17.0) in the image. */
  out: string;
  /** Stage paths (after resolving links) to leave out. Default: none. */
  exclude?: (stagePath: string) => boolean;
}

export interface RelocateReport {
  files: number;
  bytes: number;
  /** Links whose target is inside the package: kept, rewritten as relative links. */
  linksKept: number;
  /** Links into the rest of the system (/etc, /usr/share…): replaced by a copy of the target. */
  linksCopied: number;
  /** Links to files no staged package ships (e.g. the trust store a postinst would generate). */
  dangling: string[];
}

interface Mapping {
  /** A resolved stage path … */
  stage: string;
  /** … and where its copy lives in `out`. */
  out: string;
}

const MAX_LINK_HOPS = 40;

/**
 * Resolves `path` inside the stage the way the kernel would inside a chroot: absolute link
 * targets start again at the stage root, `..` never climbs above it. Returns the stage path with
 * no link left in it, or null when something on the way does not exist.
 */
export async function resolveInStage(stageRoot: string, path: string): Promise<string | null> {
  let todo = path.split('/').filter((c) => c !== '');
  let done: string[] = [];
  let hops = 0;
  while (todo.length > 0) {
    const c = todo.shift()!;
    if (c === '.') continue;
    if (c === '..') {
      done.pop();
      continue;
    }
    const next = [...done, c];
    const st = await lstat(join(stageRoot, ...next)).catch(() => null);
    if (!st) return null;
    if (st.isSymbolicLink()) {
      if (++hops > MAX_LINK_HOPS) return null;
      const target = await readlink(join(stageRoot, ...next));
      if (target.startsWith('/')) done = [];
      todo = [...target.split('/').filter((x) => x !== ''), ...todo];
      continue;
    }
    done = next;
  }
  return `/${done.join('/')}`;
}

function mapped(mappings: readonly Mapping[], stagePath: string): string | undefined {
  for (const m of mappings) {
    if (stagePath === m.stage) return m.out;
    if (stagePath.startsWith(`${m.stage}/`)) return join(m.out, stagePath.slice(m.stage.length + 1));
  }
  return undefined;
}

/**
 * Copies a tree of unpacked Debian packages into a self-contained directory. Debian splits a
 * program over the file system (the JDK's conf/ links into /etc/java-17-openjdk, Maven's lib/
 * into /usr/share/java); an isolated package must own everything under its prefix, so a link
 * that leaves the tree is replaced by a copy of what it points to, and a link that stays inside
 * becomes relative so it keeps working wherever the prefix is mounted.
 */
export async function relocateTree(options: RelocateOptions): Promise<RelocateReport> {
  const root = await resolveInStage(options.stageRoot, options.source);
  if (!root) throw new HostpullError('DEMO_BUILD_FAILED', `${options.source} is not in the unpacked packages under ${options.stageRoot}`);
  const report: RelocateReport = { files: 0, bytes: 0, linksKept: 0, linksCopied: 0, dangling: [] };
  const mappings: Mapping[] = [{ stage: root, out: options.out }];
  const exclude = options.exclude ?? (() => false);
  await mkdir(options.out, { recursive: true });

  const copyFileAt = async (stagePath: string, out: string, mode: number, size: number) => {
    await copyFile(join(options.stageRoot, stagePath), out);
    await chmod(out, mode & 0o7777);
    report.files++;
    report.bytes += size;
  };

  const copyDir = async (stageDir: string, outDir: string): Promise<void> => {
    // Sorted so two builds visit (and copy on first sight) the same entries in the same order.
    const names = (await readdir(join(options.stageRoot, stageDir))).sort();
    for (const name of names) {
      const stagePath = `${stageDir}/${name}`;
      const out = join(outDir, name);
      if (exclude(stagePath)) continue;
      const st = await lstat(join(options.stageRoot, stagePath));
      if (st.isDirectory()) {
        await mkdir(out, { mode: st.mode & 0o7777 });
        await copyDir(stagePath, out);
      } else if (st.isFile()) {
        await copyFileAt(stagePath, out, st.mode, st.size);
      } else if (st.isSymbolicLink()) {
        const target = await resolveInStage(options.stageRoot, stagePath);
        if (!target || exclude(target)) {
          report.dangling.push(stagePath);
          continue;
        }
        const inside = mapped(mappings, target);
        if (inside !== undefined) {
          await symlink(relative(dirname(out), inside) || '.', out);
          report.linksKept++;
          continue;
        }
        const tst = await lstat(join(options.stageRoot, target));
        report.linksCopied++;
        if (tst.isDirectory()) {
          // Later links into this directory point at this copy instead of copying it again.
          mappings.push({ stage: target, out });
          await mkdir(out, { mode: tst.mode & 0o7777 });
          await copyDir(target, out);
        } else if (tst.isFile()) {
          await copyFileAt(target, out, tst.mode, tst.size);
        }
      }
      // Devices, fifos and sockets do not occur in these packages' data and have no place in a package layer.
    }
  };
  await copyDir(root, options.out);
  return report;
}
