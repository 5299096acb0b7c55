/**
 * `hostpull login` / `logout` against a real registry that requires Basic auth (htpasswd), and a
 * login made by podman serving hostpull's pulls. Every file lives in this test's temp dirs:
 * HOME, XDG_RUNTIME_DIR and XDG_CONFIG_HOME point there.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI_ENTRY, runCli, type CliOptions } from '../../helpers/cli.js';
import { pushFixtureSet } from '../../helpers/fixtures.js';
import { startRegistry, type TestRegistry } from '../../helpers/registry.js';
import { useTempDir } from '../../helpers/tmp.js';

const USER = 'alice';
const PASSWORD = 'wonder:land';
const IMAGE = 'JDK11.0-GRD7.0';
let registry: TestRegistry;
const tempDir = useTempDir('login');

/** An environment whose every credential location is under `home`. */
function isolated(home: string): Record<string, string | undefined> {
  return {
    HOME: home,
    XDG_RUNTIME_DIR: join(home, 'run'),
    XDG_CONFIG_HOME: join(home, 'config'),
    DOCKER_CONFIG: join(home, 'docker'),
    REGISTRY_AUTH_FILE: undefined,
    HOSTPULL_REGISTRY_AUTH: undefined,
  };
}

function hostpull(home: string, args: string[], opts: CliOptions = {}) {
  return runCli(['--server', registry.host, ...args], { timeoutMs: 120_000, ...opts, env: { ...isolated(home), ...opts.env } });
}

beforeAll(async () => {
  registry = await startRegistry({ htpasswd: { user: USER, password: PASSWORD } });
  const auth = `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString('base64')}`;
  await pushFixtureSet(registry.url, { codes: ['JDK11.0', 'GRD7.0'], composites: [IMAGE], auth });
});
afterAll(async () => registry?.stop());

describe('hostpull login / logout', () => {
  it('a refused password stores nothing; a right one is checked, kept 0600 and used by pulls until logout', async () => {
    const home = await tempDir('home');
    const authFile = join(home, 'run', 'containers', 'auth.json');

    const anonymous = await hostpull(home, ['--root', join(home, 'store1'), 'pull', IMAGE]);
    expect(anonymous.code).toBe(1);
    expect(anonymous.stderr).toContain(`hostpull login ${registry.host}`);

    const wrong = await hostpull(home, ['login', '-u', USER, '--password-stdin', registry.host], { input: 'not-it\n' });
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toContain(`login to ${registry.host} failed: the registry refused user "alice"`);
    expect(wrong.stderr).toContain('nothing was stored');
    expect(wrong.stderr).not.toContain('not-it');
    expect(existsSync(authFile)).toBe(false);

    const login = await hostpull(home, ['login', '-u', USER, '--password-stdin', `http://${registry.host}/`], { input: `${PASSWORD}\n` });
    expect(login.stderr).toBe('');
    expect(login.code).toBe(0);
    expect(login.stdout).toBe(`Login Succeeded! (${registry.host}, kept in ${authFile})\n`);
    expect((await stat(authFile)).mode & 0o777).toBe(0o600);
    expect(JSON.parse(await readFile(authFile, 'utf8'))).toEqual({ auths: { [registry.host]: { auth: Buffer.from(`${USER}:${PASSWORD}`).toString('base64') } } });

    const pulled = await hostpull(home, ['--root', join(home, 'store2'), 'pull', IMAGE]);
    expect(pulled.stderr).toBe('');
    expect(pulled.code).toBe(0);

    const logout = await hostpull(home, ['logout', registry.host]);
    expect(logout.code).toBe(0);
    expect(logout.stdout).toBe(`Removed the login to ${registry.host} from ${authFile}\n`);
    expect(JSON.parse(await readFile(authFile, 'utf8'))).toEqual({ auths: {} });
    const refused = await hostpull(home, ['--root', join(home, 'store3'), 'pull', IMAGE]);
    expect(refused.code).toBe(1);

    const again = await hostpull(home, ['logout', registry.host]);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain(`not logged in to ${registry.host} in ${authFile}`);
  });

  it('asks for the user name and, without echoing it, the password on a terminal (under script(1), a real pty)', async () => {
    const home = await tempDir('tty');
    const cmd = [process.execPath, CLI_ENTRY, 'login', registry.host].map((a) => `'${a}'`).join(' ');
    const child = spawn('script', ['-qec', cmd, '/dev/null'], { env: { ...process.env, ...isolated(home) } as NodeJS.ProcessEnv, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    const answers = [['Username: ', USER], ['Password: ', PASSWORD]];
    // Each answer is typed once its prompt is on the terminal, as a person would.
    child.stdout.setEncoding('utf8').on('data', (s: string) => {
      out += s;
      if (answers.length > 0 && out.includes(answers[0]![0]!)) child.stdin.write(`${answers.shift()![1]}\r`);
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
    clearTimeout(timer);
    expect(out).toContain('Username: alice');
    expect(out).toContain('Password: ');
    expect(out).not.toContain(PASSWORD);
    expect(out).toContain(`Login Succeeded! (${registry.host}`);
    expect(code).toBe(0);
    expect(existsSync(join(home, 'run', 'containers', 'auth.json'))).toBe(true);
  });

  it('refuses a repository instead of a registry, and conflicting password options, before asking anything', async () => {
    const home = await tempDir('usage');
    const mark = await registry.mark();
    const repo = await hostpull(home, ['login', '-u', USER, '--password-stdin', `${registry.host}/pkg/jdk`], { input: PASSWORD });
    expect(repo.code).toBe(2);
    expect(repo.stderr).toContain(`log in to a registry host (such as ${registry.host}), not to a repository`);
    const both = await hostpull(home, ['login', '-u', USER, '-p', PASSWORD, '--password-stdin', registry.host]);
    expect(both.code).toBe(2);
    const noTty = await hostpull(home, ['login', registry.host]);
    expect(noTty.code).toBe(2);
    expect(noTty.stderr).toMatch(/Username is needed and stdin is not a terminal/);
    expect(await registry.since(mark)).toEqual([]);
    expect(existsSync(join(home, 'run'))).toBe(false);
  });

  it("a podman login serves hostpull's pulls, and logout points at the file it cannot change", async () => {
    const home = await tempDir('podman');
    const podmanFile = join(home, 'config', 'containers', 'auth.json');
    // Its own storage and run dirs: even `podman login` sets up (empty) image storage.
    const podmanState = ['--root', join(home, 'podman', 'root'), '--runroot', join(home, 'podman', 'run')];
    const podman = spawnSync('podman', [...podmanState, 'login', '--tls-verify=false', '--authfile', podmanFile, '-u', USER, '--password-stdin', registry.host], {
      input: PASSWORD,
      encoding: 'utf8',
      env: { ...process.env, ...isolated(home) } as NodeJS.ProcessEnv,
    });
    expect(podman.stderr).toBe('');
    expect(podman.status).toBe(0);

    const pulled = await hostpull(home, ['--root', join(home, 'store'), 'pull', IMAGE]);
    expect(pulled.stderr).toBe('');
    expect(pulled.code).toBe(0);

    const logout = await hostpull(home, ['logout', registry.host]);
    expect(logout.code).toBe(1);
    expect(logout.stderr).toContain(`pulls still use the login in ${podmanFile}`);
    expect(JSON.parse(await readFile(podmanFile, 'utf8')).auths[registry.host]).toBeDefined();
  });
});
