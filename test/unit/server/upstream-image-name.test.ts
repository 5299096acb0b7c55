import { describe, expect, it } from 'vitest';
import { isHostpullError } from '../../../src/errors.js';
import { parseCatalogEntry } from '../../../src/server/catalog-entry.js';
import { upstreamImageName, withoutUpstreamHost } from '../../../src/server/upstream-image-name.js';

const registry = { registry: '127.0.0.1:5000', location: 'http://127.0.0.1:5000' };
const layout = { registry: undefined, location: '/srv/layout' };

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  return undefined;
}

describe('images named by flags and catalog entries', () => {
  it('lose the upstream\'s own host, keep everything else as given', () => {
    expect(withoutUpstreamHost('127.0.0.1:5000/pkg/base:latest', registry, '--base', 'USAGE')).toBe('pkg/base:latest');
    expect(withoutUpstreamHost('127.0.0.1:5000/pkg/jdk@sha256:' + 'a'.repeat(64), registry, '--base', 'USAGE')).toBe('pkg/jdk@sha256:' + 'a'.repeat(64));
    expect(withoutUpstreamHost('pkg/base:latest', registry, '--base', 'USAGE')).toBe('pkg/base:latest');
    expect(withoutUpstreamHost('pkg/base:latest', layout, '--base', 'USAGE')).toBe('pkg/base:latest');
  });

  it('naming another registry, or any host over a layout, are refused with the code the caller gives', () => {
    const other = thrown(() => withoutUpstreamHost('localhost:5000/pkg/base:latest', registry, '--base', 'USAGE'));
    expect(isHostpullError(other, 'USAGE')).toBe(true);
    expect((other as Error).message).toMatch(/names registry localhost:5000, but the server reads images from its upstream, 127\.0\.0\.1:5000/);
    const onLayout = thrown(() => withoutUpstreamHost('127.0.0.1:5000/pkg/base:latest', layout, 'image', 'CATALOG_INVALID'));
    expect(isHostpullError(onLayout, 'CATALOG_INVALID')).toBe(true);
    expect((onLayout as Error).message).toMatch(/the OCI layout \/srv\/layout, which has no host/);
  });

  it('must have a tag or a digest', () => {
    expect(upstreamImageName('127.0.0.1:5000/pkg/base:v1', registry, '--base', 'USAGE')).toBe('pkg/base:v1');
    expect(() => upstreamImageName('pkg/base', registry, '--base', 'USAGE')).toThrow(/is not an image name: expected repository:tag/);
  });

  it('a catalog entry registered with the upstream\'s host is stored as the upstream names it', () => {
    expect(parseCatalogEntry('JDK11.0', { image: '127.0.0.1:5000/pkg/jdk:11', prefix: '/opt/jdk-11.0' }, registry).image).toBe('pkg/jdk:11');
    expect(() => parseCatalogEntry('JDK11.0', { image: '127.0.0.1:5000/pkg/jdk:11', prefix: '/opt/jdk-11.0' })).toThrow(/must be repository:tag/);
  });
});
