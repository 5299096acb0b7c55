import { posix } from 'node:path';
import { describe, expect, it } from 'vitest';

import { HostpullError } from '../../../src/errors.js';
import { assertNoConflicts, findConflicts, lowerdirsTopFirst, normalise } from '../../../src/rootfs/conflicts.js';

describe('normalise', () => {
  // What the fast paths skip must be what posix.normalize would leave as it is.
  const slow = (p: string) => {
    const n = posix.normalize(`/${p}`);
    return n.length > 1 && n.endsWith('/') ? n.slice(0, -1) : n;
  };
  const cases = ['', '.', '..', './', '../', '/', '//', 'a', '/a', 'a/', '/a/', 'a//b', 'a/./b', 'a/../b', './a', '../a', '.a', '..a', 'a/.', 'a/..', 'a/.b', 'a/..b', 'a/b.', '.../a', 'opt/go-1.19/bin/go', '/opt/go-1.19/bin/go', 'opt/x/../../etc/passwd', '/./a', 'a/b/', 'a.'];
  it.each(cases)('%j as posix.normalize has it', (p) => {
    expect(normalise(p)).toBe(slow(p));
  });
});

describe('findConflicts', () => {
  it('finds nothing for disjoint package layers', () => {
    expect(
      findConflicts([
        { name: 'JDK11.0', paths: ['/opt/jdk-11.0/bin/java', '/opt/jdk-11.0/lib/rt.jar'] },
        { name: 'MVN3.8', paths: ['/opt/mvn-3.8/bin/mvn'] },
      ]),
    ).toEqual([]);
  });

  it('reports a path written by two layers with both code names, normalising the spelling', () => {
    expect(
      findConflicts([
        { name: 'JDK11.0', paths: ['opt/x/bin/a', '/opt/jdk/bin/java'] },
        { name: 'MVN3.8', paths: ['/opt/mvn/bin/mvn', './opt/x/bin/a'] },
      ]),
    ).toEqual([{ path: '/opt/x/bin/a', first: 'JDK11.0', second: 'MVN3.8' }]);
  });

  it('reports each later writer against the first one', () => {
    const found = findConflicts([
      { name: 'A', paths: ['/etc/conf'] },
      { name: 'B', paths: ['/etc/conf'] },
      { name: 'C', paths: ['/etc/conf'] },
    ]);
    expect(found).toEqual([
      { path: '/etc/conf', first: 'A', second: 'B' },
      { path: '/etc/conf', first: 'A', second: 'C' },
    ]);
  });

  it('does not count a path listed twice by the same layer', () => {
    expect(findConflicts([{ name: 'A', paths: ['/a', '/a'] }, { name: 'B', paths: ['/b'] }])).toEqual([]);
  });

  it('reports a file in one layer that another layer uses as a directory, in either order', () => {
    const expected = [{ path: '/opt/x', first: 'A', second: 'B' }];
    expect(findConflicts([{ name: 'A', paths: ['/opt/x'] }, { name: 'B', paths: ['/opt/x/y/z'] }])).toEqual(
      expected,
    );
    expect(findConflicts([{ name: 'B', paths: ['/opt/x/y/z'] }, { name: 'A', paths: ['/opt/x'] }])).toEqual([
      { path: '/opt/x', first: 'A', second: 'B' },
    ]);
  });

  it('accepts any iterable of paths (e.g. a generator over a layer index)', () => {
    function* paths(): Generator<string> {
      yield '/p/1';
      yield '/shared';
    }
    expect(findConflicts([{ name: 'A', paths: paths() }, { name: 'B', paths: new Set(['/shared']) }])).toEqual([
      { path: '/shared', first: 'A', second: 'B' },
    ]);
  });

  it('handles 100 layers of 2,000 paths and finds the one planted conflict', () => {
    const layers = Array.from({ length: 100 }, (_, l) => ({
      name: `PKG${l}.0`,
      paths: Array.from({ length: 2000 }, (_, i) => `/opt/pkg-${l}/lib/sub${i % 50}/file-${i}.so`),
    }));
    layers[73]!.paths.push('/opt/pkg-12/lib/sub3/file-3.so');
    expect(findConflicts(layers)).toEqual([{ path: '/opt/pkg-12/lib/sub3/file-3.so', first: 'PKG12.0', second: 'PKG73.0' }]);
  });
});

describe('assertNoConflicts', () => {
  it('passes disjoint layers', () => {
    expect(() => assertNoConflicts([{ name: 'A', paths: ['/a/1'] }, { name: 'B', paths: ['/b/1'] }])).not.toThrow();
  });

  it('throws LAYER_CONFLICT naming the path and both code names, with a hint and all conflicts', () => {
    let err: unknown;
    try {
      assertNoConflicts([
        { name: 'JDK11.0', paths: ['/opt/x/bin/a', '/opt/x/bin/b'] },
        { name: 'MVN3.8', paths: ['/opt/x/bin/a', '/opt/x/bin/b'] },
      ]);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(HostpullError);
    const e = err as HostpullError;
    expect(e.code).toBe('LAYER_CONFLICT');
    expect(e.message).toBe('path /opt/x/bin/a is written by both JDK11.0 and MVN3.8 (and 1 more)');
    expect(e.hint).toBe('pass --allow-overlap to fall back to manifest order');
    expect(e.details?.conflicts).toHaveLength(2);
  });
});

describe('lowerdirsTopFirst', () => {
  it('puts the base (first in the manifest) at the bottom', () => {
    expect(lowerdirsTopFirst(['/l/base', '/l/jdk', '/l/mvn'])).toEqual(['/l/mvn', '/l/jdk', '/l/base']);
  });
});
