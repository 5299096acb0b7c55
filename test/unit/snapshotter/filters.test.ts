import { describe, expect, it } from 'vitest';
import { compileFilters, parseFilter } from '../../../src/snapshotter/filters.js';
import { isHostpullError } from '../../../src/errors.js';

const info = { kind: 'committed', name: 'sha256:abc', parent: '', labels: { 'containerd.io/snapshot.ref': 'sha256:abc', team: 'a,b' } };
const lookup = (path: readonly string[]) => {
  if (path[0] === 'labels') return (info.labels as Record<string, string>)[path.slice(1).join('.')];
  return (info as unknown as Record<string, string>)[path[0]!];
};

describe('containerd filters', () => {
  it('parses the filter containerd sends after a remote prepare', () => {
    expect(parseFilter('kind==committed,name=="sha256:abc",labels."containerd.io/snapshot.ref"=="sha256:abc"')).toEqual([
      { path: ['kind'], operator: '==', value: 'committed' },
      { path: ['name'], operator: '==', value: 'sha256:abc' },
      { path: ['labels', 'containerd.io/snapshot.ref'], operator: '==', value: 'sha256:abc' },
    ]);
  });

  it('ANDs selectors within a filter and ORs filters', () => {
    expect(compileFilters(['kind==committed,name=="sha256:abc"'])(lookup)).toBe(true);
    expect(compileFilters(['kind==active,name=="sha256:abc"'])(lookup)).toBe(false);
    expect(compileFilters(['kind==active', 'name=="sha256:abc"'])(lookup)).toBe(true);
    expect(compileFilters([])(lookup)).toBe(true);
  });

  it('supports !=, ~= with /regex/ quoting, presence, and commas inside quotes', () => {
    expect(compileFilters(['kind!=view'])(lookup)).toBe(true);
    expect(compileFilters(['name~=/^sha256:a.c$/'])(lookup)).toBe(true);
    expect(compileFilters(['name~="^sha256:x"'])(lookup)).toBe(false);
    expect(compileFilters(['labels.team'])(lookup)).toBe(true);
    expect(compileFilters(['labels.missing'])(lookup)).toBe(false);
    expect(compileFilters(['labels.team=="a,b"'])(lookup)).toBe(true);
    expect(compileFilters(['parent'])(lookup)).toBe(false);
  });

  it('rejects malformed filters with FILTER_INVALID', () => {
    for (const bad of ['name=="open', 'kind==', '==x', 'kind==a b,', 'name~=/[/']) {
      let err: unknown;
      try {
        compileFilters([bad])(lookup);
      } catch (e) {
        err = e;
      }
      expect(isHostpullError(err, 'FILTER_INVALID'), bad).toBe(true);
    }
  });
});
