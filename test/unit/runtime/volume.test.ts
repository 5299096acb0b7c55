import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HostpullError } from '../../../src/errors.js';
import { parseVolume, parseVolumes } from '../../../src/runtime/volume.js';

let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'hostpull-volume-'));
  await mkdir(join(dir, 'src'));
  await writeFile(join(dir, 'file'), 'x');
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

function failure(fn: () => unknown): HostpullError {
  try {
    fn();
  } catch (err) {
    if (err instanceof HostpullError) return err;
    throw err;
  }
  throw new Error('expected a HostpullError');
}

describe('parseVolume', () => {
  it('binds an absolute host directory read-write, nosuid and nodev, at a clean container path', () => {
    expect(parseVolume(`${dir}/src:/work//src/`, '/')).toEqual({ source: join(dir, 'src'), destination: '/work/src', options: ['rbind', 'nosuid', 'nodev'] });
  });

  it(':ro makes it read-only; :rw is the default spelled out', () => {
    expect(parseVolume(`${dir}/src:/src:ro`, '/').options).toEqual(['rbind', 'nosuid', 'nodev', 'ro']);
    expect(parseVolume(`${dir}/src:/src:rw`, '/').options).toEqual(['rbind', 'nosuid', 'nodev']);
  });

  it('resolves ./ and ../ against the working directory; a file can be bound too', () => {
    expect(parseVolume('./src:/src', dir).source).toBe(join(dir, 'src'));
    expect(parseVolume('../file:/etc/f:ro', join(dir, 'src')).source).toBe(join(dir, 'file'));
  });

  it('refuses a bare name (a named volume elsewhere), naming what to give instead', () => {
    const err = failure(() => parseVolume('cache:/root/.m2', dir));
    expect(err.code).toBe('MOUNT_INVALID');
    expect(err.message).toMatch(/"cache" is not a host path/);
    expect(err.hint).toMatch(/absolute path, or relative starting with \.\//);
  });

  it('refuses a host path that does not exist, and creates nothing', async () => {
    const err = failure(() => parseVolume(`${dir}/missing:/data`, '/'));
    expect(err.code).toBe('MOUNT_INVALID');
    expect(err.message).toContain(`${dir}/missing does not exist`);
    expect(err.hint).toMatch(/create it first/);
    await symlink(join(dir, 'nowhere'), join(dir, 'dangling'));
    expect(failure(() => parseVolume(`${dir}/dangling:/data`, '/')).message).toMatch(/does not exist/);
  });

  it('refuses malformed specs, unknown options and bad container paths', () => {
    for (const [spec, why] of [
      [`${dir}`, /two or three fields/],
      [`${dir}:/a:ro:x`, /two or three fields/],
      [`:/a`, /empty/],
      [`${dir}/src:`, /empty/],
      [`${dir}/src:/a:z`, /unknown option "z"/],
      [`${dir}/src:/a:ro,rw`, /both ro and rw/],
      [`${dir}/src:relative`, /not an absolute path/],
      [`${dir}/src:/a/../b`, /contains "\.\."/],
      [`${dir}/src:/proc/sys`, /under \/proc/],
      [`${dir}/src:/`, /over the container's root/],
    ] as const) {
      const err = failure(() => parseVolume(spec, '/'));
      expect(err.code, spec).toBe('MOUNT_INVALID');
      expect(err.message, spec).toMatch(why);
      expect(err.message, spec).toContain(`-v ${spec}`);
    }
  });
});

describe('parseVolumes', () => {
  it('keeps the order given', () => {
    expect(parseVolumes([`${dir}/src:/a`, `${dir}/file:/b:ro`], '/').map((m) => m.destination)).toEqual(['/a', '/b']);
  });

  it('refuses two volumes at the same container path, naming both', () => {
    const err = failure(() => parseVolumes([`${dir}/src:/data`, `${dir}/file:/data/`], '/'));
    expect(err.code).toBe('MOUNT_INVALID');
    expect(err.message).toBe(`-v ${dir}/file:/data/: /data is already mounted by -v ${dir}/src:/data`);
  });
});
