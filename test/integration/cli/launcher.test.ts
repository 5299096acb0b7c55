/**
 * dist/cli/hostpull, the command users run: Node from the CLI's startup snapshot when the blob was
 * made by the node on PATH, else dist/cli/main.js as it is (scripts/launcher.sh). The rest of the
 * suite runs the CLI through it (test/helpers/cli.ts), so every command is checked from the
 * snapshot; here, which way it started, seen in the command line of the process it became.
 */
import { chmod, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CLI_ENTRY, REPO_ROOT, runCli } from '../../helpers/cli.js';
import { useTempDir } from '../../helpers/tmp.js';
import { startTestDaemon } from '../daemon/daemon-process.js';

const BLOB = join(REPO_ROOT, 'dist/cli/hostpull.blob');

describe('the launcher, dist/cli/hostpull', () => {
  const tmp = useTempDir('launcher');

  /** The command line and environment of the process a `hostpull daemon` started through the launcher became (it execs node). */
  async function daemonProcess(env?: Record<string, string | undefined>): Promise<{ argv: string[]; environ: Map<string, string> }> {
    const dir = await tmp();
    const daemon = await startTestDaemon({ root: join(dir, 'root'), socket: join(dir, 'hostpull.sock'), ...(env ? { env } : {}) });
    try {
      const list = (file: string) => readFileSync(`/proc/${daemon.child.pid}/${file}`, 'utf8').split('\0').filter(Boolean);
      const environ = new Map(list('environ').map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)] as [string, string]));
      return { argv: list('cmdline'), environ };
    } finally {
      expect((await daemon.stop()).code).toBe(0);
    }
  }

  async function daemonCommandLine(env?: Record<string, string | undefined>): Promise<string[]> {
    return (await daemonProcess(env)).argv;
  }

  it('starts Node from the startup snapshot when the node on PATH made the blob', async () => {
    const argv = await daemonCommandLine();
    expect(argv.slice(1)).toEqual(['--snapshot-blob', BLOB, CLI_ENTRY, '--root', expect.any(String), '--log-level', 'info', 'daemon', '--socket', expect.any(String)]);
  });

  it.each([
    ['HOSTPULL_NO_SNAPSHOT is set', { HOSTPULL_NO_SNAPSHOT: '1' }],
    ['NODE_OPTIONS is set (Node refuses a snapshot made under other V8 flags)', { NODE_OPTIONS: '--max-old-space-size=512' }],
  ])('runs main.js as it is when %s', async (_why, env) => {
    const argv = await daemonCommandLine(env);
    expect(argv).not.toContain('--snapshot-blob');
    expect(argv[1]).toBe(CLI_ENTRY);
  });

  it('runs main.js as it is when the node on PATH is not the binary that made the blob', async () => {
    // Another file than the one stamped: what an upgraded or another installed node is.
    const bin = await tmp();
    await writeFile(join(bin, 'node'), `#!/bin/sh\nexec "${process.execPath}" "$@"\n`);
    await chmod(join(bin, 'node'), 0o755);
    const argv = await daemonCommandLine({ PATH: `${bin}:${process.env.PATH ?? ''}` });
    expect(argv).not.toContain('--snapshot-blob');
    expect(argv[1]).toBe(CLI_ENTRY);
  });

  it('moves NODE_EXTRA_CA_CERTS to HOSTPULL_EXTRA_CA_CERTS, which hostpull reads at its first TLS connection', async () => {
    const moved = await daemonProcess({ NODE_EXTRA_CA_CERTS: '/etc/ssl/certs/extra.pem', HOSTPULL_EXTRA_CA_CERTS: undefined });
    expect(moved.environ.get('HOSTPULL_EXTRA_CA_CERTS')).toBe('/etc/ssl/certs/extra.pem');
    expect(moved.environ.has('NODE_EXTRA_CA_CERTS')).toBe(false);
    // Not under NODE_OPTIONS (it may choose other roots), nor over a file named already.
    for (const env of [
      { NODE_EXTRA_CA_CERTS: '/etc/ssl/certs/extra.pem', HOSTPULL_EXTRA_CA_CERTS: undefined, NODE_OPTIONS: '--use-openssl-ca' },
      { NODE_EXTRA_CA_CERTS: '/etc/ssl/certs/extra.pem', HOSTPULL_EXTRA_CA_CERTS: '/etc/ssl/certs/other.pem' },
    ]) {
      const kept = await daemonProcess(env);
      expect(kept.environ.get('NODE_EXTRA_CA_CERTS')).toBe('/etc/ssl/certs/extra.pem');
      expect(kept.environ.get('HOSTPULL_EXTRA_CA_CERTS')).toBe(env.HOSTPULL_EXTRA_CA_CERTS);
    }
  });

  it('says so when no node is on PATH', async () => {
    const r = await runCli(['--version'], { env: { PATH: '/nonexistent' } });
    expect(r.code).toBe(127);
    expect(r.stderr).toBe('hostpull: node is not on PATH\n');
  });

  it('gives the same answers from the snapshot and from main.js, environment read when the command runs', async () => {
    const root = await tmp();
    for (const args of [['--version'], ['--root', root, 'images', '--json'], ['--root', root, 'pull', '--no-daemon', 'Not A Reference']]) {
      const [fromSnapshot, plain] = await Promise.all([runCli(args, { env: { HOSTPULL_LOG_FORMAT: 'json' } }), runCli(args, { entry: CLI_ENTRY, env: { HOSTPULL_LOG_FORMAT: 'json' } })]);
      expect({ code: fromSnapshot.code, stdout: fromSnapshot.stdout }).toEqual({ code: plain.code, stdout: plain.stdout });
      expect(fromSnapshot.stderr.replace(/"time":\d+/g, '')).toBe(plain.stderr.replace(/"time":\d+/g, ''));
    }
  });
});
