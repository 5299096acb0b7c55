import { describe, expect, it } from 'vitest';
import { appliedV8Flags, applyV8Flags } from '../../../src/util/v8-flags.js';

describe('applyV8Flags', () => {
  // V8's own defaults, so setting them leaves this test process as it was.
  const defaults = ['--interrupt-budget=67584', '--no-liftoff-only'];

  it('remembers what it set, in order, after what was set before', () => {
    const before = appliedV8Flags();
    applyV8Flags(defaults);
    expect(appliedV8Flags()).toEqual([...before, ...defaults]);
  });

  it('hands out a copy: a caller adding to it changes nothing', () => {
    const copy = appliedV8Flags();
    copy.push('--liftoff-only');
    expect(appliedV8Flags()).not.toContain('--liftoff-only');
  });
});
