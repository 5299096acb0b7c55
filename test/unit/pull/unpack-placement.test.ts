import { describe, expect, it } from 'vitest';
import { unpacksInWorker } from '../../../src/pull/unpack-placement.js';

const MiB = 1024 * 1024;

describe('unpacksInWorker', () => {
  it('sends a big layer to a worker, started for it if need be', () => {
    expect(unpacksInWorker(16 * MiB)).toBe(true);
    expect(unpacksInWorker(200 * MiB, 0)).toBe(true);
  });

  it('keeps a small layer on the calling thread unless a worker is running idle', () => {
    expect(unpacksInWorker(9 * MiB)).toBe(false);
    expect(unpacksInWorker(9 * MiB, 0)).toBe(false);
    expect(unpacksInWorker(9 * MiB, 1)).toBe(true);
    expect(unpacksInWorker(1024, 2)).toBe(true);
  });
});
