import { describe, expect, it } from 'vitest';
import { FULL_CLI_PULL_ENV, PLAIN_PULL_ENV, plainPull } from '../../../src/cli/plain-pull.js';
import { buildProgram } from '../../../src/cli/program.js';

const env = { PATH: '/usr/bin', XDG_RUNTIME_DIR: '/run/user/1000' };

describe('plainPull: the pull command lines taken without commander (by a daemon, or in-process)', () => {
  it('reads the verb, the reference and the naming and pull options, in any order and either spelling', () => {
    expect(plainPull(['--root', '/r', '--server', '127.0.0.1:5000', 'pull', 'JDK11.0-MVN3.8', '--json', '--socket', '/s.sock'], env)).toEqual({
      input: 'JDK11.0-MVN3.8',
      root: '/r',
      server: '127.0.0.1:5000',
      namespace: 'hostpull',
      socket: '/s.sock',
      daemon: true,
      flags: { concurrency: 4, unpack: true, json: true },
    });
    expect(plainPull(['pull', '--concurrency=8', '--no-unpack', 'x/y:1', '--keep-blobs', '--root=/r', '--namespace', 'ns', '--socket=/s'], env)).toEqual({
      input: 'x/y:1',
      root: '/r',
      server: undefined,
      namespace: 'ns',
      socket: '/s',
      daemon: true,
      flags: { concurrency: 8, unpack: false, keepBlobs: true },
    });
    expect(plainPull(['pull', 'A1.0', '--no-daemon'], env)).toMatchObject({ input: 'A1.0', daemon: false });
  });

  it('takes server, namespace and socket from the environment the full CLI reads, flags first', () => {
    const withEnv = { ...env, HOSTPULL_SERVER: 'reg:5000', HOSTPULL_NAMESPACE: 'pkgs', HOSTPULL_SOCKET: '/env.sock' };
    expect(plainPull(['--root', '/r', 'pull', 'A1.0'], withEnv)).toMatchObject({ server: 'reg:5000', namespace: 'pkgs', socket: '/env.sock' });
    expect(plainPull(['--root', '/r', 'pull', 'A1.0', '--server', 'other:1', '--socket', '/flag.sock'], withEnv)).toMatchObject({ server: 'other:1', socket: '/flag.sock' });
  });

  it.each([
    ['another verb', ['images', '--json']],
    ['no reference', ['pull']],
    ['two references', ['pull', 'A1.0', 'B1.0']],
    ['help', ['pull', 'A1.0', '--help']],
    ['a short flag', ['pull', '-h']],
    ['--daemon', ['pull', 'A1.0', '--daemon']],
    ['--insecure-registry', ['--insecure-registry', 'r:5000', 'pull', 'A1.0']],
    ['a registry timeout flag', ['--registry-headers-timeout', '5s', 'pull', 'A1.0']],
    ['--log-level', ['--log-level', 'debug', 'pull', 'A1.0']],
    ['--log-format', ['--log-format', 'json', 'pull', 'A1.0']],
    ['an option value missing', ['pull', 'A1.0', '--socket']],
    ['an empty value', ['--root', '', 'pull', 'A1.0']],
    ['a boolean given a value', ['pull', 'A1.0', '--json=false']],
    ['a concurrency that is not a whole number', ['pull', 'A1.0', '--concurrency', '2.5']],
    ['a concurrency out of bounds', ['pull', 'A1.0', '--concurrency', '0']],
    ['a concurrency above the bound', ['pull', 'A1.0', '--concurrency', '65']],
    ['a double dash', ['pull', '--', 'A1.0']],
  ])('leaves %s to the full CLI', (_what, args) => {
    expect(plainPull(args, env)).toBeUndefined();
  });

  it('leaves the command line to the full CLI when a variable it binds to a pull option is set', () => {
    expect(plainPull(['pull', 'A1.0'], { ...env, HOSTPULL_KEEP_BLOBS: '0' })).toBeUndefined();
    expect(plainPull(['pull', 'A1.0'], { ...env, HOSTPULL_REGISTRY_HEADERS_TIMEOUT: 'soon' })).toBeUndefined();
    for (const name of FULL_CLI_PULL_ENV) expect(plainPull(['pull', 'A1.0'], { ...env, [name]: '1' }), name).toBeUndefined();
    expect(plainPull(['pull', 'A1.0'], { ...env, HOSTPULL_ROOT: '/r' })).toMatchObject({ input: 'A1.0' });
  });

  it('takes the command line under a HOSTPULL_* variable that means nothing to a pull', () => {
    // A benchmark's HOSTPULL_CLI (bench/peers/run.sh) sent every pull it timed through commander.
    expect(plainPull(['pull', 'A1.0'], { ...env, HOSTPULL_CLI: '/x/main.js', HOSTPULL_LAZY_LOG_LEVEL: 'debug' })).toMatchObject({ input: 'A1.0' });
  });

  it('knows every variable the full CLI binds to a pull option, as program.ts declares them', async () => {
    const program = await buildProgram(['node', 'hostpull', 'pull', 'A1.0']);
    const pull = program.commands.find((c) => c.name() === 'pull')!;
    const declared = new Set([...program.options, ...pull.options].map((o) => o.envVar).filter((v): v is string => v !== undefined));
    expect(declared.size).toBeGreaterThan(FULL_CLI_PULL_ENV.size);
    const unknown = [...declared].filter((v) => !PLAIN_PULL_ENV.has(v) && v !== 'HOSTPULL_LOG_FORMAT' && !FULL_CLI_PULL_ENV.has(v));
    expect(unknown).toEqual([]);
    expect([...FULL_CLI_PULL_ENV].filter((v) => !declared.has(v))).toEqual([]);
  });

  it('keeps a valid HOSTPULL_LOG_FORMAT (an in-process pull logs in it) and leaves an invalid one to be refused', () => {
    expect(plainPull(['pull', 'A1.0'], { ...env, HOSTPULL_LOG_FORMAT: 'json' })).toMatchObject({ input: 'A1.0' });
    expect(plainPull(['pull', 'A1.0'], { ...env, HOSTPULL_LOG_FORMAT: 'xml' })).toBeUndefined();
  });
});
