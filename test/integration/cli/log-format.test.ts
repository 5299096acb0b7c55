/**
 * The CLI's log lines on stderr: text for a person by default, JSON objects with --log-format json
 * or HOSTPULL_LOG_FORMAT=json (a daemon's and a server's default, checked where their logs are read).
 * Through a real failure: a pull from a registry port that nothing listens on, which the registry
 * client warns about before its (short) retry budget runs out.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { CLI_ENTRY, runCli, spawnCli } from '../../helpers/cli.js';
import { freePort } from '../../helpers/free-port.js';
import { useTempDir } from '../../helpers/tmp.js';

describe('--log-format', () => {
  const tmp = useTempDir('log-format');

  const pullFromNowhere = async (args: string[], env: Record<string, string> = {}) => {
    const root = await tmp();
    const port = await freePort();
    return runCli(['--root', root, '--registry-retry-budget', '1s', ...args, 'pull', '--no-daemon', `127.0.0.1:${port}/nothing:here`], { env });
  };

  it('is text by default: the warning as a sentence, its fields as key=value', async () => {
    const r = await pullFromNowhere([]);
    expect(r.code).toBe(1);
    const warning = r.stderr.split('\n').find((l) => l.includes('retrying for up to'));
    expect(warning).toMatch(/^hostpull: warning: registry 127\.0\.0\.1:\d+ failed; retrying for up to 1\.0s \(--registry-retry-budget\) registry=127\.0\.0\.1:\d+ err="GET http:\/\/127\.0\.0\.1:\d+\/v2\/nothing\/manifests\/here: connection failed \(ECONNREFUSED\)" retryInMs=\d+ inARow=1$/);
    expect(r.stderr).not.toContain('{"level"');
    // The error that ends the command is worded as before, whatever the log format.
    expect(r.stderr).toMatch(/^hostpull: registry 127\.0\.0\.1:\d+ kept failing for /m);
  }, 30_000);

  it.each([
    ['the flag', ['--log-format', 'json'], {}],
    ['the environment', [], { HOSTPULL_LOG_FORMAT: 'json' }],
  ])('is one JSON object per line when %s asks for json', async (_how, args, env) => {
    const r = await pullFromNowhere(args, env);
    expect(r.code).toBe(1);
    const objects = r.stderr
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { level: number; name: string; msg: string; registry: string });
    expect(objects.length).toBeGreaterThanOrEqual(1);
    expect(objects[0]).toMatchObject({ level: 40, name: 'hostpull', msg: expect.stringMatching(/^registry 127\.0\.0\.1:\d+ failed; retrying for up to 1\.0s/) });
    expect(r.stderr).toMatch(/^hostpull: registry 127\.0\.0\.1:\d+ kept failing for /m);
  }, 30_000);

  it('is JSON for a service whose stderr is no terminal (a journal reads it), and text when it is one', async () => {
    const serve = (root: string) => ['--root', root, 'serve', '--listen', '127.0.0.1:0', '--upstream', 'http://127.0.0.1:1'];
    /** Output of `child` (both streams) until the server says it serves; then it is stopped. */
    const untilServing = async (child: ChildProcess): Promise<string> => {
      let out = '';
      const exited = new Promise((resolve) => child.once('exit', resolve));
      try {
        await new Promise<void>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`no "serving" within 20 s: ${out}`)), 20_000);
          const take = (b: Buffer) => {
            out += b.toString();
            if (/serving http:/.test(out)) {
              clearTimeout(timer);
              resolve();
            }
          };
          child.stdout!.on('data', take);
          child.stderr?.on('data', take);
        });
      } finally {
        child.kill('SIGTERM');
        await exited;
      }
      return out;
    };

    const piped = await untilServing(spawnCli(serve(await tmp())));
    expect(piped).toMatch(/^\{"level":30,.*"msg":"hostpull server listening"\}$/m);
    // Info is a server's default level; an explicit --log-level warn (the CLI's default) holds it back.
    const quiet = await untilServing(spawnCli(['--log-level', 'warn', ...serve(await tmp())]));
    expect(quiet).toMatch(/serving http:/);
    expect(quiet).not.toContain('hostpull server listening');

    // script(1) gives the server a terminal; `exec` makes the server the process script stops.
    const quoted = [process.execPath, CLI_ENTRY, ...serve(await tmp())].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
    const terminal = await untilServing(spawn('script', ['-q', '-c', `exec ${quoted}`, '/dev/null'], { stdio: ['ignore', 'pipe', 'pipe'] }));
    expect(terminal).toMatch(/^hostpull: info: hostpull server listening url=http:\/\/127\.0\.0\.1:\d+ upstream=http:\/\/127\.0\.0\.1:1 /m);
    expect(terminal).not.toContain('{"level"');
  }, 60_000);

  it('refuses a format it does not know, from the flag or the environment, before doing anything', async () => {
    const flag = await runCli(['--log-format', 'xml', 'images', '--no-daemon', '--root', await tmp()]);
    expect(flag.code).toBe(2);
    expect(flag.stderr).toMatch(/--log-format <format>' argument 'xml' is invalid\. Allowed choices are text, json/);
    const env = await runCli(['images', '--no-daemon', '--root', await tmp()], { env: { HOSTPULL_LOG_FORMAT: 'xml' } });
    expect(env.code).toBe(2);
    expect(env.stderr).toMatch(/value 'xml' from env 'HOSTPULL_LOG_FORMAT' is invalid\. Allowed choices are text, json/);
  });
});
