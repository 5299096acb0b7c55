import { describe, expect, it } from 'vitest';
import { isHostpullError } from '../../../src/errors.js';
import { snapshotMounts } from '../../../src/snapshotter/snapshot-mounts.js';

describe('snapshot mounts', () => {
  it('binds an active snapshot without parent read-write (containerd applies a base layer into it)', () => {
    expect(snapshotMounts({ lowerdirs: [], upper: { fs: '/s/1/fs', work: '/s/1/work' } })).toEqual([{ type: 'bind', source: '/s/1/fs', options: ['rbind', 'rw'] }]);
  });

  it('binds a view of one layer read-only', () => {
    expect(snapshotMounts({ lowerdirs: ['/l/3'], emptyDir: '/s/2/fs' })).toEqual([{ type: 'bind', source: '/l/3', options: ['rbind', 'ro'] }]);
  });

  it('overlays the ancestors (nearest first) under an active snapshot, in the classic option string', () => {
    expect(snapshotMounts({ lowerdirs: ['/l/3', '/l/1'], upper: { fs: '/s/4/fs', work: '/s/4/work' } })).toEqual([
      { type: 'overlay', source: 'overlay', options: ['lowerdir=/l/3:/l/1', 'upperdir=/s/4/fs', 'workdir=/s/4/work', 'index=off'] },
    ]);
  });

  it('keeps the classic string past one page (containerd shortens long option strings itself)', () => {
    const lowerdirs = Array.from({ length: 300 }, (_, i) => `/var/lib/hostpull/layers/${1000 + i}`);
    const [m] = snapshotMounts({ lowerdirs });
    expect(m!.type).toBe('overlay');
    expect(m!.options[0]).toBe(`lowerdir=${lowerdirs.join(':')}`);
    expect(m!.options).toContain('ro');
  });

  it('refuses paths the option string cannot carry', () => {
    let err: unknown;
    try {
      snapshotMounts({ lowerdirs: ['/a:b/1', '/l/2'] });
    } catch (e) {
      err = e;
    }
    expect(isHostpullError(err, 'INVALID_MOUNT')).toBe(true);
  });
});
