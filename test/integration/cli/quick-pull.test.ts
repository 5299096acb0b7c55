/**
 * A plain `hostpull pull` command line is pulled in-process without commander (cli/quick-pull.ts),
 * and does what the full CLI does with it: the same output, record, errors, exit codes and log
 * format. Each case runs twice through a real registry: as given, and with `--log-level warn`
 * (the default, which only the full CLI reads). `NODE_DEBUG=module` shows which of the two loaded
 * commander, so a quick path that quietly handed everything to the full CLI fails here.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../helpers/cli.js';
import { pushFixtureSet } from '../../helpers/fixtures.js';
import { startProxy, type TestProxy } from '../../helpers/proxy.js';
import { startRegistry, type TestRegistry } from '../../helpers/registry.js';
import { useTempDir } from '../../helpers/tmp.js';

const TAG = 'JDK11.0-MVN3.8';
let registry: TestRegistry;
let proxy: TestProxy;

beforeAll(async () => {
  registry = await startRegistry();
  await pushFixtureSet(registry.url, { codes: ['JDK11.0', 'MVN3.8'], composites: [TAG] });
  proxy = await startProxy(registry.url);
}, 120_000);

afterAll(async () => {
  await proxy?.close();
  await registry?.stop();
});

/** A run, with whether it loaded commander (from NODE_DEBUG=module's lines, then dropped from stderr). */
interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  loadedCommander: boolean;
}

async function runTraced(args: string[], env: Record<string, string> = {}): Promise<Run> {
  const r = await runCli(args, { env: { NODE_DEBUG: 'module', ...env }, timeoutMs: 120_000 });
  const lines = r.stderr.split('\n');
  return {
    code: r.code,
    stdout: r.stdout,
    stderr: lines.filter((l) => !l.startsWith('MODULE ')).join('\n'),
    loadedCommander: lines.some((l) => l.startsWith('MODULE ') && l.includes('/commander/')),
  };
}

/** Durations in the summary line vary from run to run. */
function withoutTime(s: string): string {
  return s.replace(/ in \d+ms:/, ' in T:');
}

/**
 * A pull record without what varies from run to run: its times, and the ids of its layers (the
 * order in which layers fetched at once were committed).
 */
function recordShape(stdout: string): Record<string, unknown> {
  const { startedAt, finishedAt, phases, layers, ...rest } = JSON.parse(stdout) as Record<string, unknown>;
  return {
    ...rest,
    times: [typeof startedAt, typeof finishedAt, Object.keys(phases as object)],
    layers: (layers as Array<Record<string, unknown>>).map(({ layerId, ...layer }) => ({ ...layer, layerId: typeof layerId })),
  };
}

describe('a plain pull without commander', () => {
  const tmp = useTempDir('quick-pull');

  /** The same command line through the quick path and through the full CLI, each on a fresh root. */
  async function both(args: (root: string) => string[]): Promise<{ quick: Run; full: Run }> {
    const quick = await runTraced(args(await tmp()));
    const full = await runTraced(['--log-level', 'warn', ...args(await tmp())]);
    expect(quick.loadedCommander).toBe(false);
    expect(full.loadedCommander).toBe(true);
    return { quick, full };
  }

  it('pulls as the full CLI does: the same summary line, record and stderr', async () => {
    const summary = await both((root) => ['--root', root, '--server', registry.host, 'pull', TAG, '--no-daemon']);
    expect(summary.quick.code).toBe(0);
    expect(summary.quick.stdout).toMatch(/^pulled 127\.0\.0\.1:\d+\/hostpull:JDK11\.0-MVN3\.8 sha256:[0-9a-f]{12}… in \d+ms: 3 layers, 0 cached, 3 fetched /);
    expect(withoutTime(summary.quick.stdout)).toBe(withoutTime(summary.full.stdout));
    expect(summary.quick.stderr).toBe(summary.full.stderr);

    // Without --no-daemon too: no daemon answers, so the pull is in-process all the same.
    const records = await both((root) => ['--root', root, '--server', registry.host, 'pull', TAG, '--json', '--socket', `${root}/no-daemon.sock`]);
    expect(recordShape(records.quick.stdout)).toMatchObject({ ok: true, layerHits: 0, layerMisses: 3 });
    expect(recordShape(records.quick.stdout)).toEqual(recordShape(records.full.stdout));
    expect(records.quick.stderr).toBe(records.full.stderr);
  }, 240_000);

  it('fails as the full CLI does: the same message, hint and exit code', async () => {
    const unknown = await both((root) => ['--root', root, '--server', registry.host, 'pull', 'NOPE1.0-JDK11.0', '--no-daemon']);
    expect(unknown.quick.code).toBe(1);
    expect(unknown.full.code).toBe(1);
    expect(unknown.quick.stderr).toMatch(/^hostpull: .*NOPE1\.0-JDK11\.0/m);
    expect(unknown.quick.stderr).toBe(unknown.full.stderr);

    const badRef = await both((root) => ['--root', root, 'pull', 'Not A Reference', '--no-daemon']);
    expect(badRef.quick.code).toBe(1);
    expect(badRef.full.code).toBe(1);
    expect(badRef.quick.stderr).toMatch(/^hostpull: "Not A Reference" is a short reference but no hostpull server is configured$/m);
    expect(badRef.quick.stderr).toBe(badRef.full.stderr);
  }, 120_000);

  it('logs in the format HOSTPULL_LOG_FORMAT asks for', async () => {
    // One 503 on the manifest: the registry client warns once, then the pull succeeds.
    const oneFault = () => {
      let left = 1;
      proxy.setFault((req) => (req.method === 'GET' && req.path.includes('/manifests/') && left-- > 0 ? { status: 503, retryAfter: '0' } : undefined));
    };
    const line = (root: string) => ['--root', root, '--server', proxy.host, 'pull', TAG, '--no-daemon'];
    try {
      oneFault();
      const text = await runTraced(line(await tmp()));
      expect(text.loadedCommander).toBe(false);
      expect(text.code).toBe(0);
      expect(text.stderr).toMatch(/^hostpull: warning: registry 127\.0\.0\.1:\d+ failed.*; retrying for up to /m);

      oneFault();
      const json = await runTraced(line(await tmp()), { HOSTPULL_LOG_FORMAT: 'json' });
      expect(json.loadedCommander).toBe(false);
      expect(json.code).toBe(0);
      const objects = json.stderr
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as { level: number; msg: string });
      expect(objects).toContainEqual(expect.objectContaining({ level: 40, msg: expect.stringMatching(/^registry 127\.0\.0\.1:\d+ failed.*; retrying for up to /) }));
      expect(json.stderr).not.toMatch(/^hostpull: warning:/m);
    } finally {
      proxy.clearFaults();
    }
  }, 120_000);
});
