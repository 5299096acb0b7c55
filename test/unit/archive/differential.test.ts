import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { readLayer } from '../../../src/archive/read-layer.js';
import { isHostpullError } from '../../../src/errors.js';
import { DIFF_PREFIX, DIFFERENTIAL_CASES } from '../../helpers/differential-corpus.js';

function read(tar: Buffer, claimed: boolean): Promise<unknown> {
  return readLayer(Readable.from([tar]), {
    compression: 'none',
    where: 'sha256:test',
    claim: claimed ? { code: 'DIFF1.0', prefix: DIFF_PREFIX.slice(1), allowSetuid: false } : undefined,
    maxEntries: 1000,
    maxDepth: 64,
    maxBytes: 1 << 20,
    tarBounds: [{ bytes: 1 << 24, rule: 'too-many-bytes', why: 'test' }],
  }).then(
    () => undefined,
    (e: unknown) => e,
  );
}

describe('parser-differential archives are refused by the one reader, not interpreted', () => {
  it.each(DIFFERENTIAL_CASES.map((c) => [c.id, c] as const))('%s', async (_id, c) => {
    // As a package layer (registration, a composite's package) and as a base layer alike:
    // ambiguity does not depend on what the layer may write.
    for (const claimed of [true, false]) {
      const err = await read(c.tar, claimed);
      expect(isHostpullError(err, 'LAYER_AMBIGUOUS'), `${c.what}: ${String(err)}`).toBe(true);
      expect((err as { details: { rule: string } }).details.rule).toBe(c.rule);
    }
  });
});
