import { describe, expect, it } from 'vitest';
import { isHostpullError } from '../../../src/errors.js';
import { DEFAULT_PATH } from '../../../src/oci/index.js';
import { mergeEnv, parseEnvList } from '../../../src/server/env-merge.js';

describe('mergeEnv', () => {
  it('prepends package PATH dirs in canonical order to the base PATH and sorts the rest', () => {
    const env = mergeEnv({ PATH: '/usr/bin:/bin', LANG: 'C' }, [
      { code: 'GRD7.0', env: { GRADLE_HOME: '/opt/grd-7.0' }, pathAdd: ['/opt/grd-7.0/bin'] },
      { code: 'JDK11.0', env: { JAVA_HOME: '/opt/jdk-11.0' }, pathAdd: ['/opt/jdk-11.0/bin'] },
    ]);
    expect(env).toEqual(['PATH=/opt/grd-7.0/bin:/opt/jdk-11.0/bin:/usr/bin:/bin', 'GRADLE_HOME=/opt/grd-7.0', 'JAVA_HOME=/opt/jdk-11.0', 'LANG=C']);
  });

  it('uses the default PATH without a base', () => {
    expect(mergeEnv({}, [{ code: 'A', env: {}, pathAdd: ['/opt/a/bin'] }])).toEqual([`PATH=/opt/a/bin:${DEFAULT_PATH}`]);
  });

  it('lets a package override the base but not another package', () => {
    expect(mergeEnv({ LANG: 'C' }, [{ code: 'A', env: { LANG: 'C.UTF-8' }, pathAdd: [] }])).toContain('LANG=C.UTF-8');
    expect(mergeEnv({}, [
      { code: 'A', env: { X: '1' }, pathAdd: [] },
      { code: 'B', env: { X: '1' }, pathAdd: [] },
    ])).toContain('X=1');
    try {
      mergeEnv({}, [
        { code: 'JDK11.0', env: { JAVA_HOME: '/opt/jdk-11.0' }, pathAdd: [] },
        { code: 'ZULU17', env: { JAVA_HOME: '/opt/zulu-17' }, pathAdd: [] },
      ]);
      expect.unreachable();
    } catch (err) {
      expect(isHostpullError(err, 'ENV_CONFLICT')).toBe(true);
      expect((err as Error).message).toMatch(/JDK11\.0 and ZULU17 set JAVA_HOME/);
    }
  });

  it('parses K=V lists, skipping malformed items', () => {
    expect(parseEnvList(['A=1', 'B=x=y', 'bad', '=v'])).toEqual({ A: '1', B: 'x=y' });
    expect(parseEnvList(null)).toEqual({});
  });
});
