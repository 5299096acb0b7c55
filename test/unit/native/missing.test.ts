// The addon is loaded lazily: importing src/native works without it, the first call says how to fix it.
import { describe, expect, it, vi } from 'vitest';

vi.mock('node:module', async (importOriginal) => {
  const actual = await importOriginal<typeof import('node:module')>();
  return {
    ...actual,
    createRequire: () => (id: string) => {
      throw Object.assign(new Error(`Cannot find module '${id}'`), { code: 'MODULE_NOT_FOUND' });
    },
  };
});

import { HostpullError } from '../../../src/errors.js';
import { addonPath, constants, isNativeAvailable, makedev, mknod, NATIVE_MISSING_HINT } from '../../../src/native/index.js';

describe('missing native addon', () => {
  it('does not fail at import, and pure-JS helpers still work', () => {
    expect(isNativeAvailable()).toBe(false);
    expect(makedev(1, 3)).toBe(259);
    expect(constants.MS_BIND).toBe(4096);
  });

  it('throws NATIVE_MISSING with a hint on first use', () => {
    let err: unknown;
    try {
      mknod('/tmp/never', constants.S_IFCHR, 0);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(HostpullError);
    expect(err).toMatchObject({
      code: 'NATIVE_MISSING',
      hint: NATIVE_MISSING_HINT,
      details: { path: addonPath() },
    });
    // The loader's reason is in the message: which module or library is missing.
    expect((err as Error).message).toBe(`native addon not loadable: ${addonPath()}: Cannot find module '${addonPath()}'`);
    expect(NATIVE_MISSING_HINT).toMatch(/npm run build:native .*libisal-dev/);
    expect(addonPath()).toMatch(/\/native\/build\/Release\/hostpull_native\.node$/);
  });
});
