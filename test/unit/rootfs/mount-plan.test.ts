import { describe, expect, it } from 'vitest';

import { isHostpullError } from '../../../src/errors.js';
import {
  MOUNT_DATA_PAGE_SIZE,
  OVERLAY_MAX_LOWER_LAYERS,
  planOverlay,
  type OverlayMount,
} from '../../../src/rootfs/mount-plan.js';

function thrownBy(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected a throw');
}

describe('planOverlay', () => {
  it('bind-mounts a single read-only layer instead of an overlay', () => {
    const m = planOverlay({ lowerdirs: ['/l/a'], target: '/mnt', readonly: true });
    expect(m).toEqual({ type: 'bind', source: '/l/a', target: '/mnt', options: ['bind', 'ro'] });
  });

  it('bind-mounts a single layer without upper even when readonly is not asked (it could not be written)', () => {
    expect(planOverlay({ lowerdirs: ['/l/a'], target: '/mnt' }).type).toBe('bind');
  });

  it('uses an overlay for a single layer with an upper dir', () => {
    const m = planOverlay({ lowerdirs: ['/l/a'], upperdir: '/c/u', workdir: '/c/w', target: '/mnt' });
    expect(m).toEqual({
      type: 'overlay',
      source: 'overlay',
      target: '/mnt',
      options: ['lowerdir=/l/a', 'upperdir=/c/u', 'workdir=/c/w'],
      mode: 'option-string',
    });
  });

  it('keeps lowerdirs top-most first and appends extra options and ro', () => {
    const m = planOverlay({
      lowerdirs: ['/l/top', '/l/mid', '/l/base'],
      target: '/mnt',
      readonly: true,
      options: ['index=off', 'userxattr'],
    });
    expect(m.options).toEqual(['lowerdir=/l/top:/l/mid:/l/base', 'index=off', 'userxattr', 'ro']);
    expect((m as OverlayMount).mode).toBe('option-string');
  });

  it('switches to lowerdir+ exactly when the option string and its NUL no longer fit in a page', () => {
    // "lowerdir=" (9) + a + ":" + b ; choose b so the total length is page-1, then page.
    const a = '/l/a';
    const fixed = 'lowerdir='.length + a.length + 1;
    const fitting = `/${'x'.repeat(MOUNT_DATA_PAGE_SIZE - 1 - fixed - 1)}`;
    const m1 = planOverlay({ lowerdirs: [a, fitting], target: '/mnt' }) as OverlayMount;
    expect(m1.options.join(',').length).toBe(MOUNT_DATA_PAGE_SIZE - 1);
    expect(m1.mode).toBe('option-string');

    const tooLong = `${fitting}y`;
    const m2 = planOverlay({ lowerdirs: [a, tooLong], target: '/mnt' }) as OverlayMount;
    expect(m2.mode).toBe('lowerdir+');
    expect(m2.options).toEqual([`lowerdir+=${a}`, `lowerdir+=${tooLong}`]);
  });

  it('counts upperdir, workdir and extra options towards the page', () => {
    const lowers = ['/l/a', '/l/b'];
    const upper = `/${'u'.repeat(2100)}`;
    const work = `/${'w'.repeat(2100)}`;
    const m = planOverlay({ lowerdirs: lowers, upperdir: upper, workdir: work, target: '/mnt' }) as OverlayMount;
    expect(m.mode).toBe('lowerdir+');
    expect(m.options).toEqual(['lowerdir+=/l/a', 'lowerdir+=/l/b', `upperdir=${upper}`, `workdir=${work}`]);
  });

  it('honours a custom page size (e.g. 64 KiB pages on arm64)', () => {
    const lowers = Array.from({ length: 130 }, (_, i) => `/var/lib/hostpull/layers/${'a'.repeat(64)}${i}`);
    expect((planOverlay({ lowerdirs: lowers, target: '/m' }) as OverlayMount).mode).toBe('lowerdir+');
    expect((planOverlay({ lowerdirs: lowers, target: '/m', pageSize: 65536 }) as OverlayMount).mode).toBe(
      'option-string',
    );
  });

  it('uses lowerdir+ for paths with ":" or "," that the option string would split', () => {
    for (const odd of ['/l/a:b', '/l/a,b', '/l/a\\b']) {
      const m = planOverlay({ lowerdirs: [odd, '/l/c'], target: '/mnt' }) as OverlayMount;
      expect(m.mode).toBe('lowerdir+');
      expect(m.options[0]).toBe(`lowerdir+=${odd}`);
    }
  });

  it('rejects an empty layer list, relative paths, and upperdir without workdir', () => {
    for (const bad of [
      () => planOverlay({ lowerdirs: [], target: '/mnt' }),
      () => planOverlay({ lowerdirs: ['rel/a', '/b'], target: '/mnt' }),
      () => planOverlay({ lowerdirs: ['/a', '/b'], target: 'mnt' }),
      () => planOverlay({ lowerdirs: ['/a', '/b'], upperdir: '/u', target: '/mnt' }),
    ]) {
      expect(isHostpullError(thrownBy(bad), 'INVALID_MOUNT')).toBe(true);
    }
  });

  it('refuses more lower layers than overlayfs stacks', () => {
    const lowers = Array.from({ length: OVERLAY_MAX_LOWER_LAYERS + 1 }, (_, i) => `/l/${i}`);
    const err = thrownBy(() => planOverlay({ lowerdirs: lowers, target: '/mnt' }));
    expect(isHostpullError(err, 'TOO_MANY_LAYERS')).toBe(true);
    expect(() =>
      planOverlay({ lowerdirs: lowers.slice(0, OVERLAY_MAX_LOWER_LAYERS), target: '/mnt' }),
    ).not.toThrow();
  });
});
