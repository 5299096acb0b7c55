import { describe, expect, it } from 'vitest';
import { HostpullError } from '../../../src/errors.js';
import {
  formatReference,
  manifestSelector,
  MAX_TAG_LENGTH,
  parseReference,
  resolveReference,
  validateTag,
  type ImageReference,
} from '../../../src/oci/reference.js';

const DIGEST = `sha256:${'0123456789abcdef'.repeat(4)}`;

function failure(fn: () => unknown): HostpullError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(HostpullError);
    return err as HostpullError;
  }
  throw new Error('expected an error');
}

describe('parseReference', () => {
  it('splits host:port/repo:tag@digest', () => {
    expect(parseReference(`127.0.0.1:5000/pkg/jdk:11.0@${DIGEST}`)).toEqual({
      registry: '127.0.0.1:5000',
      repository: 'pkg/jdk',
      tag: '11.0',
      digest: DIGEST,
    });
    expect(parseReference(`registry.example.com/pkg/jdk@${DIGEST}`)).toEqual({ registry: 'registry.example.com', repository: 'pkg/jdk', digest: DIGEST });
  });

  it('takes localhost as a registry', () => {
    expect(parseReference('localhost/x')).toEqual({ registry: 'localhost', repository: 'x' });
    expect(parseReference('localhost:5000/x:y')).toEqual({ registry: 'localhost:5000', repository: 'x', tag: 'y' });
  });

  it('defaults to docker.io and adds library/ to single-component names there', () => {
    expect(parseReference('ubuntu')).toEqual({ registry: 'docker.io', repository: 'library/ubuntu' });
    expect(parseReference('ubuntu:22.04')).toEqual({ registry: 'docker.io', repository: 'library/ubuntu', tag: '22.04' });
    expect(parseReference('docker.io/busybox')).toEqual({ registry: 'docker.io', repository: 'library/busybox' });
    expect(parseReference('someone/tool:1')).toEqual({ registry: 'docker.io', repository: 'someone/tool', tag: '1' });
  });

  it('uses another default registry without the library/ prefix', () => {
    expect(parseReference('tool:1', 'reg.example:5000')).toEqual({ registry: 'reg.example:5000', repository: 'tool', tag: '1' });
  });

  it('accepts an IPv6 registry in brackets', () => {
    expect(parseReference('[::1]:5000/x')).toEqual({ registry: '[::1]:5000', repository: 'x' });
    expect(parseReference('[::1]:5000/x:tag')).toEqual({ registry: '[::1]:5000', repository: 'x', tag: 'tag' });
  });

  it(`accepts a tag of ${MAX_TAG_LENGTH} characters and refuses ${MAX_TAG_LENGTH + 1}, naming the limit`, () => {
    const ok = 'T'.repeat(MAX_TAG_LENGTH);
    expect(parseReference(`localhost:5000/x:${ok}`).tag).toBe(ok);
    const err = failure(() => parseReference(`localhost:5000/x:${'T'.repeat(MAX_TAG_LENGTH + 1)}`));
    expect(err.code).toBe('REFERENCE_INVALID');
    expect(err.message).toContain('tag is 129 characters long; OCI allows at most 128');
  });

  it('refuses an uppercase repository', () => {
    const err = failure(() => parseReference('localhost:5000/Pkg/jdk:1'));
    expect(err.code).toBe('REFERENCE_INVALID');
    expect(err.message).toContain('repository "Pkg/jdk" must be lowercase');
    expect(() => parseReference('Ubuntu')).toThrow(/must be lowercase/);
  });

  it.each(['localhost:5000/a/../b', 'localhost:5000/a..b', 'localhost:5000/a//b', 'localhost:5000/a/', 'localhost:5000/', '/a', 'a/b/'])(
    'refuses `..` and empty components: %s',
    (input) => {
      expect(failure(() => parseReference(input)).code).toBe('REFERENCE_INVALID');
    },
  );

  it('refuses bad tags, bad digests, bad hosts and empty input', () => {
    expect(failure(() => parseReference('localhost/x:.hidden')).message).toContain('starts with . or -');
    expect(failure(() => parseReference('localhost/x:')).code).toBe('REFERENCE_INVALID');
    expect(failure(() => parseReference('localhost/x@sha256:abc')).message).toContain('is not a valid digest');
    expect(failure(() => parseReference('bad_host.example/x')).message).toContain('is not a valid host[:port]');
    expect(failure(() => parseReference('')).message).toContain('empty');
  });
});

describe('resolveReference', () => {
  const options = { server: '127.0.0.1:5000', namespace: 'hostpull' };

  it('turns a bare composite tag into server/namespace:tag', () => {
    expect(resolveReference('JDK11.0-MVN3.8-GRD7.0', options)).toEqual({ registry: '127.0.0.1:5000', repository: 'hostpull', tag: 'JDK11.0-MVN3.8-GRD7.0' });
  });

  it('refuses a bare composite tag over 128 characters with TAG_INVALID naming the limit', () => {
    const tag = Array.from({ length: 20 }, (_, i) => `PKG${i}.0`).join('-') + '-XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX';
    expect(tag.length).toBeGreaterThan(MAX_TAG_LENGTH);
    const err = failure(() => resolveReference(tag, options));
    expect(err.code).toBe('TAG_INVALID');
    expect(err.message).toContain(`OCI allows at most ${MAX_TAG_LENGTH}`);
    expect(err.hint).toContain('fewer packages');
  });

  it('fails with NO_SERVER and a hint when a short reference has no server', () => {
    for (const input of ['JDK11.0-MVN3.8', 'pkg:1']) {
      const err = failure(() => resolveReference(input, { namespace: 'hostpull' }));
      expect(err.code).toBe('NO_SERVER');
      expect(err.message).toContain(JSON.stringify(input));
      expect(err.hint).toContain('--server');
      expect(err.hint).toContain('HOSTPULL_SERVER');
    }
  });

  it('looks up repo:tag on the server', () => {
    expect(resolveReference('jdk:11.0', options)).toEqual({ registry: '127.0.0.1:5000', repository: 'jdk', tag: '11.0' });
    expect(resolveReference(`jdk@${DIGEST}`, options)).toEqual({ registry: '127.0.0.1:5000', repository: 'jdk', digest: DIGEST });
  });

  it('looks up repo:tag on a server whose name has no dot or port', () => {
    // A cluster-internal host name such as `hostpull-serve` does not look like a domain to the
    // reference grammar, but it is the configured server, not a Docker Hub namespace.
    expect(resolveReference('jdk:11.0', { server: 'hostpull-serve', namespace: 'hostpull' })).toEqual({
      registry: 'hostpull-serve',
      repository: 'jdk',
      tag: '11.0',
    });
  });

  it('leaves full references untouched', () => {
    expect(resolveReference('registry.example.com/pkg/jdk:11.0', options)).toEqual({ registry: 'registry.example.com', repository: 'pkg/jdk', tag: '11.0' });
    expect(resolveReference(`localhost:5001/x@${DIGEST}`, { namespace: 'hostpull' })).toEqual({ registry: 'localhost:5001', repository: 'x', digest: DIGEST });
  });
});

describe('formatReference', () => {
  it.each([
    `127.0.0.1:5000/pkg/jdk:11.0@${DIGEST}`,
    '127.0.0.1:5000/hostpull:JDK11.0-MVN3.8-GRD7.0',
    `registry.example.com/a/b/c@${DIGEST}`,
    'docker.io/library/ubuntu:22.04',
    'localhost/x',
    '[::1]:5000/x:y',
  ])('round trips %s', (text) => {
    const ref = parseReference(text);
    expect(formatReference(ref)).toBe(text);
    expect(parseReference(formatReference(ref))).toEqual(ref);
  });

  it('writes the docker.io default in full', () => {
    expect(formatReference(parseReference('ubuntu'))).toBe('docker.io/library/ubuntu');
  });

  it('asks the manifest endpoint for the digest first, then the tag, then latest', () => {
    const ref: ImageReference = { registry: 'r.example', repository: 'x' };
    expect(manifestSelector(ref)).toBe('latest');
    expect(manifestSelector({ ...ref, tag: 'v1' })).toBe('v1');
    expect(manifestSelector({ ...ref, tag: 'v1', digest: DIGEST as ImageReference['digest'] & string })).toBe(DIGEST);
  });
});

describe('validateTag', () => {
  it('accepts word characters, dots and dashes not at the start', () => {
    expect(validateTag('_a.b-C9')).toBe('_a.b-C9');
    expect(() => validateTag('-x')).toThrow(/starts with \. or -/);
    expect(() => validateTag('a/b')).toThrow(/outside/);
  });
});
