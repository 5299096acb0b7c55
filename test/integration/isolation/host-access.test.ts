/**
 * DESIGN §2: the store and every mounted rootfs are reachable by root alone. An image whose base
 * layer carries a setuid-root program (a copy of the host's /usr/bin/id, mode 4755, owner root)
 * is pulled, mounted, and prepared by the daemon for a runtime; then nobody (65534), and a member
 * of the daemon's --socket-group, try to run that program from every place hostpull put it.
 * Nothing may print euid 0. A view mounted with --allow-suid-dev shows the test would see it.
 */
import { spawn, spawnSync } from 'node:child_process';
import { chmod, readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../helpers/cli.js';
import { baseFiles, buildLayer, pushImage } from '../../helpers/fixtures.js';
import { startRegistry, type TestRegistry } from '../../helpers/registry.js';
import { useStagedCli } from '../../helpers/staged-cli.js';
import { makeTempDir, removeTempDir } from '../../helpers/tmp.js';
import { startTestDaemon } from '../daemon/daemon-process.js';

const NOBODY = 65534;
const SUID = 'usr/bin/suid-id';
const cli = useStagedCli();

let registry: TestRegistry;
let work: string;
let image: string;

/** Runs `path -u` (the effective uid) as nobody, or as a member of `gid`; stdout, or the errno of exec. */
function euidAs(path: string, gid = NOBODY): string {
  const r = spawnSync(path, ['-u'], { uid: NOBODY, gid, encoding: 'utf8' });
  if (r.error) return (r.error as NodeJS.ErrnoException).code ?? 'error';
  return r.status === 0 ? r.stdout.trim() : `exit ${r.status}: ${r.stderr.trim()}`;
}

function mountOptions(point: string): string[] {
  const line = spawnSync('cat', ['/proc/self/mountinfo'], { encoding: 'utf8' }).stdout.split('\n').find((l) => l.split(' ')[4] === point);
  return line ? line.split(' ')[5]!.split(',') : [];
}

beforeAll(async () => {
  registry = await startRegistry();
  work = await makeTempDir('host-access');
  // Only hostpull's own modes may stand between nobody and the store: the test dir is open.
  await chmod(work, 0o755);
  const base = buildLayer([...baseFiles(), { path: `/${SUID}`, mode: 0o4755, content: await readFile('/usr/bin/id') }]);
  await pushImage(registry.url, 'host/suid', 'v1', [base], { cmd: ['/bin/sh'] });
  image = `${registry.host}/host/suid:v1`;
});

afterAll(async () => {
  await registry?.stop();
  if (work) await removeTempDir(work);
});

describe('nothing in the store or a prepared rootfs runs as root for another user', () => {
  it('root\'s store: not traversable by nobody, so its setuid files cannot be run', async () => {
    const root = join(work, 'store');
    const pull = await runCli(['--root', root, 'pull', '--no-daemon', image]);
    expect(pull.code, pull.stderr).toBe(0);
    for (const d of ['', 'blobs', 'layers', 'containers', 'ingest']) expect((await stat(join(root, d))).mode & 0o077, d).toBe(0);
    const [layer] = (await readdir(join(root, 'layers'))).filter((n) => /^\d+$/.test(n));
    const program = join(root, 'layers', layer!, SUID);
    expect((await stat(program)).mode & 0o7777).toBe(0o4755);
    expect(euidAs(program)).toBe('EACCES');
  });

  it('hostpull mount: the view is nosuid,nodev, so nobody runs the program as nobody; --allow-suid-dev shows the difference', async () => {
    const root = join(work, 'store');
    const view = join(work, 'view');
    const mounted = await runCli(['--root', root, 'mount', image, view]);
    expect(mounted.code, mounted.stderr).toBe(0);
    try {
      expect(mountOptions(view)).toEqual(expect.arrayContaining(['ro', 'nosuid', 'nodev']));
      expect(euidAs(join(view, SUID))).toBe(String(NOBODY));
    } finally {
      expect((await runCli(['--root', root, 'umount', view])).code).toBe(0);
    }
    // The control: without nosuid the same program does run as root for nobody.
    const open = join(work, 'open-view');
    expect((await runCli(['--root', root, 'mount', '--allow-suid-dev', image, open])).code).toBe(0);
    try {
      expect(euidAs(join(open, SUID))).toBe('0');
    } finally {
      expect((await runCli(['--root', root, 'umount', open])).code).toBe(0);
    }
  });

  it('a --socket-group member gets a prepared rootfs path, and can neither run nor read what is below it', async () => {
    const root = join(work, 'daemon-store');
    const socket = join(work, 'hostpull.sock');
    const daemon = await startTestDaemon({ root, socket, args: ['--socket-group', 'nogroup'] });
    try {
      // As the member: the daemon's API through its socket (node with no file of the checkout).
      const api = (method: string, path: string, body?: unknown) =>
        new Promise<{ status: number; body: string }>((resolve, reject) => {
          const payload = JSON.stringify(body === undefined ? '' : JSON.stringify(body));
          const script = `const d=${payload};const r=require('http').request({socketPath:${JSON.stringify(socket)},method:${JSON.stringify(method)},path:${JSON.stringify(path)},headers:{'content-type':'application/json','content-length':Buffer.byteLength(d)}},(res)=>{let b='';res.on('data',(c)=>b+=c);res.on('end',()=>process.stdout.write(JSON.stringify({status:res.statusCode,body:b})))});r.end(d);`;
          const child = spawn(process.execPath, ['-e', script], { uid: NOBODY, gid: NOBODY, cwd: '/' });
          let out = '';
          child.stdout.on('data', (b: Buffer) => (out += b.toString()));
          child.once('error', reject);
          child.once('close', () => (out ? resolve(JSON.parse(out) as { status: number; body: string }) : reject(new Error('no answer'))));
        });
      const prepared = await api('POST', '/v1/rootfs', { reference: image });
      expect(prepared.status, prepared.body).toBe(201);
      const { id, rootfs, bundle } = JSON.parse(prepared.body) as { id: string; rootfs: string; bundle: string };
      // Root's runtime can use it; the member only holds a path it cannot enter.
      expect((await stat(join(rootfs, SUID))).mode & 0o7777).toBe(0o4755);
      expect(euidAs(join(rootfs, SUID))).toBe('EACCES');
      const read = spawnSync('cat', [join(bundle, 'config.json')], { uid: NOBODY, gid: NOBODY, encoding: 'utf8' });
      expect(read.status).not.toBe(0);
      expect(read.stderr).toMatch(/Permission denied/);
      // What the member can do with it: hand it to a root runtime, and remove it.
      const removed = await api('DELETE', '/v1/rootfs', { id });
      expect(removed.status, removed.body).toBe(204);
    } finally {
      await daemon.stop();
    }
  });

  it('nobody\'s own (rootless) store: the setuid file belongs to nobody, so it runs as nobody', async () => {
    const home = join(work, 'nobody-home');
    spawnSync('install', ['-d', '-o', String(NOBODY), '-g', String(NOBODY), '-m', '0700', home]);
    const child = spawnSync(process.execPath, [cli().entry, '--root', join(home, 'store'), 'pull', '--no-daemon', image], {
      uid: NOBODY,
      gid: NOBODY,
      cwd: cli().root,
      env: { ...process.env, HOME: home, HOSTPULL_ROOT: undefined },
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(child.status, child.stderr).toBe(0);
    const [layer] = (await readdir(join(home, 'store', 'layers'))).filter((n) => /^\d+$/.test(n));
    const program = join(home, 'store', 'layers', layer!, SUID);
    expect((await stat(program)).uid).toBe(NOBODY);
    expect(euidAs(program)).toBe(String(NOBODY));
  });
});
