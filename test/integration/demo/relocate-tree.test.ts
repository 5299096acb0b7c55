/** relocateTree on a small staged tree shaped like Debian's JDK and Maven packages. */
import { lstat, mkdir, mkdtemp, readFile, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { relocateTree, resolveInStage } from '../../../src/demo/relocate-tree.js';

let dir: string;
let stage: string;
let out: string;

async function file(path: string, text: string): Promise<void> {
  await mkdir(join(stage, path, '..'), { recursive: true });
  await writeFile(join(stage, path), text);
}
async function link(path: string, target: string): Promise<void> {
  await mkdir(join(stage, path, '..'), { recursive: true });
  await symlink(target, join(stage, path));
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'hostpull-relocate-'));
  stage = join(dir, 'stage');
  out = join(dir, 'out');
  await mkdir(stage);
  // /usr/lib/jvm/jdk: bin/java, a conf link into /etc, a relative link inside, a dangling link,
  // a directory link out of the tree and a second link into that directory.
  await file('usr/lib/jvm/jdk/bin/java', 'java');
  await file('usr/lib/jvm/jdk/legal/base/LICENSE', 'gpl');
  await link('usr/lib/jvm/jdk/legal/compiler/LICENSE', '../base/LICENSE');
  await link('usr/lib/jvm/jdk/legal/abs/LICENSE', '/usr/lib/jvm/jdk/legal/base/LICENSE');
  await file('etc/jdk/java.security', 'sec');
  await link('usr/lib/jvm/jdk/conf/java.security', '/etc/jdk/java.security');
  await link('usr/lib/jvm/jdk/lib/cacerts', '/etc/ssl/certs/java/cacerts');
  await file('usr/share/jdk-src/src/A.java', 'class A {}');
  await link('usr/lib/jvm/jdk/src', '../../../share/jdk-src/src');
  await link('usr/lib/jvm/jdk/a-src-link', '/usr/share/jdk-src/src/A.java');
  // A chain: the tree links to /usr/share/java/x.jar, itself a link to a versioned jar.
  await file('usr/share/java/x-1.0.jar', 'jar');
  await link('usr/share/java/x.jar', 'x-1.0.jar');
  await link('usr/lib/jvm/jdk/lib/x.jar', '../../../../share/java/x.jar');
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('relocateTree', () => {
  it('copies what links out of the tree point to, keeps inner links relative and drops dangling ones', async () => {
    const report = await relocateTree({ stageRoot: stage, source: '/usr/lib/jvm/jdk', out });
    expect(await readFile(join(out, 'bin/java'), 'utf8')).toBe('java');
    // Outside targets become real files.
    expect((await lstat(join(out, 'conf/java.security'))).isFile()).toBe(true);
    expect(await readFile(join(out, 'conf/java.security'), 'utf8')).toBe('sec');
    expect(await readFile(join(out, 'lib/x.jar'), 'utf8')).toBe('jar');
    // Links inside stay links, made relative (the absolute one too).
    expect(await readlink(join(out, 'legal/compiler/LICENSE'))).toBe('../base/LICENSE');
    expect(await readlink(join(out, 'legal/abs/LICENSE'))).toBe('../base/LICENSE');
    // A linked directory is copied once; a later link into it points at the copy.
    expect((await lstat(join(out, 'src'))).isDirectory()).toBe(true);
    expect(await readFile(join(out, 'src/A.java'), 'utf8')).toBe('class A {}');
    expect((await lstat(join(out, 'a-src-link'))).isFile() || (await readlink(join(out, 'a-src-link'))) === 'src/A.java').toBe(true);
    // The trust store a maintainer script would generate is not there: the link is dropped.
    expect(await lstat(join(out, 'lib/cacerts')).catch(() => null)).toBeNull();
    expect(report.dangling).toEqual(['/usr/lib/jvm/jdk/lib/cacerts']);
    expect(report.linksKept).toBeGreaterThanOrEqual(2);
  });

  it('resolves absolute link targets inside the stage, never on the host', async () => {
    await link('etc/hostname-link', '/etc/hostname');
    expect(await resolveInStage(stage, '/etc/hostname-link')).toBeNull();
    expect(await resolveInStage(stage, '/usr/lib/jvm/jdk/lib/x.jar')).toBe('/usr/share/java/x-1.0.jar');
    await link('loop', '/loop');
    expect(await resolveInStage(stage, '/loop')).toBeNull();
  });
});
