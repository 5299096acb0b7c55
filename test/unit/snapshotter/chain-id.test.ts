import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { Digest } from '../../../src/oci/digest.js';
import { chainIdOf, chainIdOfName, diffIdForChain, isExtractKey } from '../../../src/snapshotter/chain-id.js';

const d = (s: string) => `sha256:${createHash('sha256').update(s).digest('hex')}` as Digest;

describe('chain IDs', () => {
  it('follow image-spec: the bottom diffID, then sha256 of "parent diffID"', () => {
    const [a, b] = [d('a'), d('b')];
    expect(chainIdOf(undefined, a)).toBe(a);
    expect(chainIdOf(a, b)).toBe(d(`${a} ${b}`));
  });

  it('are read from bare and namespaced snapshot names only', () => {
    const c = d('c');
    expect(chainIdOfName(c)).toBe(c);
    expect(chainIdOfName(`k8s.io/12/${c}`)).toBe(c);
    expect(chainIdOfName('default/3/my-container')).toBeUndefined();
    expect(chainIdOfName(`k8s.io/x/${c}`)).toBeUndefined();
  });

  it('pick the diffID that reproduces a chain', () => {
    const [p, x, y] = [d('p'), d('x'), d('y')];
    expect(diffIdForChain(chainIdOf(p, y), p, [x, y])).toBe(y);
    expect(diffIdForChain(chainIdOf(p, y), p, [x])).toBeUndefined();
  });

  it('recognise containerd unpack keys', () => {
    expect(isExtractKey(`default/4/extract-123456789-AbCd ${d('z')}`)).toBe(true);
    expect(isExtractKey('default/4/my-container')).toBe(false);
  });
});
