import { describe, expect, it } from 'vitest';
import { v8FlagsFor } from '../../../src/cli/verb-v8-flags.js';

describe('v8FlagsFor', () => {
  it('gives a short verb the first tier of WebAssembly and the larger optimisation budget', () => {
    for (const verb of ['pull', 'run', 'images', 'gc']) expect(v8FlagsFor(verb)).toEqual(['--liftoff-only', '--interrupt-budget=270336']);
  });

  it('keeps optimised WebAssembly for the daemon, which unpacks layers with the larger budget', () => {
    expect(v8FlagsFor('daemon')).toEqual(['--interrupt-budget=270336']);
  });

  it("leaves the server, bench and demo with V8's defaults", () => {
    for (const verb of ['serve', 'bench', 'demo']) expect(v8FlagsFor(verb)).toEqual([]);
  });
});
