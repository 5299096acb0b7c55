import { describe, expect, it, vi } from 'vitest';
import { forkLazyHelperEarly, looksLikeLazyRun, takeEarlyLazyHelper } from '../../../src/cli/early-lazy-helper.js';
import type { FuseHelper } from '../../../src/lazy/index.js';
import { DEFAULT_LOG_LEVEL, type LogFormat, type LogLevel } from '../../../src/log.js';

/** A stand-in for a started helper: its log settings and whether it was stopped. */
function fakeHelper(logLevel: LogLevel, logFormat: LogFormat) {
  const stop = vi.fn(async () => undefined);
  return { helper: { logLevel, logFormat, stop } as unknown as FuseHelper, stop };
}

describe('looksLikeLazyRun', () => {
  it('reads run and --lazy before any --, with or without root options before the verb', () => {
    expect(looksLikeLazyRun(['run', '--lazy', 'JDK17.0-MVN3.8', '--', 'mvn', '-v'])).toBe(true);
    expect(looksLikeLazyRun(['--root', '/srv/hp', '--server', 'h:5000', 'run', '--lazy', 'GO1.19'])).toBe(true);
  });

  it('leaves lines that are not lazy runs, ask for help or set a log option to commander', () => {
    expect(looksLikeLazyRun(['run', 'GO1.19', '--', 'prog', '--lazy'])).toBe(false);
    expect(looksLikeLazyRun(['pull', '--lazy', 'GO1.19'])).toBe(false);
    expect(looksLikeLazyRun(['run', '--lazy', '--help'])).toBe(false);
    expect(looksLikeLazyRun(['run', '-h', '--lazy'])).toBe(false);
    expect(looksLikeLazyRun(['--log-level', 'debug', 'run', '--lazy', 'GO1.19'])).toBe(false);
    expect(looksLikeLazyRun(['--log-format=json', 'run', '--lazy', 'GO1.19'])).toBe(false);
  });
});

describe('forkLazyHelperEarly and takeEarlyLazyHelper', () => {
  const line = ['run', '--lazy', 'GO1.19', '--', 'go', 'version'];

  it('starts the helper with the default level and the format of HOSTPULL_LOG_FORMAT (text without it), and the run takes it', async () => {
    for (const [env, format] of [[{}, 'text'], [{ HOSTPULL_LOG_FORMAT: 'json' }, 'json']] as const) {
      const { helper, stop } = fakeHelper(DEFAULT_LOG_LEVEL, format);
      const start = vi.fn(async () => helper);
      forkLazyHelperEarly(line, { env, isRoot: true, start });
      expect(start).toHaveBeenCalledWith(DEFAULT_LOG_LEVEL, format);
      expect(await takeEarlyLazyHelper(DEFAULT_LOG_LEVEL, format)).toBe(helper);
      expect(stop).not.toHaveBeenCalled();
      // Taken once: a second take finds none.
      expect(await takeEarlyLazyHelper(DEFAULT_LOG_LEVEL, format)).toBeUndefined();
    }
  });

  it('stops a helper whose log settings are not the run\'s, so that the run starts its own', async () => {
    const { helper, stop } = fakeHelper(DEFAULT_LOG_LEVEL, 'text');
    forkLazyHelperEarly(line, { env: {}, isRoot: true, start: async () => helper });
    expect(await takeEarlyLazyHelper('debug', 'text')).toBeUndefined();
    expect(stop).toHaveBeenCalledOnce();
  });

  it('starts nothing without root, for another line, or with a log format commander would refuse', async () => {
    const start = vi.fn(async () => fakeHelper(DEFAULT_LOG_LEVEL, 'text').helper);
    forkLazyHelperEarly(line, { env: {}, isRoot: false, start });
    forkLazyHelperEarly(['run', 'GO1.19'], { env: {}, isRoot: true, start });
    forkLazyHelperEarly(line, { env: { HOSTPULL_LOG_FORMAT: 'yaml' }, isRoot: true, start });
    expect(start).not.toHaveBeenCalled();
    expect(await takeEarlyLazyHelper(DEFAULT_LOG_LEVEL, 'text')).toBeUndefined();
  });

  it('gives the run nothing when the early start failed: the run\'s own start says why', async () => {
    forkLazyHelperEarly(line, { env: {}, isRoot: true, start: async () => Promise.reject(new Error('no helper built')) });
    expect(await takeEarlyLazyHelper(DEFAULT_LOG_LEVEL, 'text')).toBeUndefined();
  });
});
