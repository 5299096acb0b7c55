import { existsSync, readFileSync } from 'node:fs';
import { mkdir, rename, rm, symlink, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isHostpullError } from '../../../src/errors.js';
import type { ImageConfig } from '../../../src/oci/index.js';
import { buildRuntimeSpec, type RuntimeSpecInput } from '../../../src/runtime/index.js';
import { defaultOpenFilesLimit } from '../../../src/runtime/spec-defaults.js';
import { makeBusyboxRootfs } from '../../integration/runtime/busybox-rootfs.js';

let dir: string;
let rootfs: string;

beforeAll(async () => {
  ({ dir, rootfs } = await makeBusyboxRootfs('hostpull-spec-'));
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

function image(config: NonNullable<ImageConfig['config']>): ImageConfig {
  return { architecture: 'amd64', os: 'linux', config, rootfs: { type: 'layers', diff_ids: [] } };
}

function build(config: NonNullable<ImageConfig['config']>, extra: Partial<RuntimeSpecInput> = {}, opts = {}) {
  return buildRuntimeSpec({ imageConfig: image(config), rootfsPath: rootfs, ...extra }, opts);
}

const readText = (path: string) => (existsSync(path) ? readFileSync(path, 'utf8') : undefined);

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    if (isHostpullError(err)) return err.code;
    throw err;
  }
  return undefined;
}

describe('process.args', () => {
  it('is Entrypoint + Cmd', () => {
    expect(build({ Entrypoint: ['/bin/sh', '-c'], Cmd: ['echo hi'] }).process.args).toEqual(['/bin/sh', '-c', 'echo hi']);
  });
  it('run IMAGE CMD replaces Cmd and keeps the Entrypoint', () => {
    expect(build({ Entrypoint: ['env'], Cmd: ['x'] }, { args: ['a', 'b'] }).process.args).toEqual(['env', 'a', 'b']);
  });
  it('--entrypoint drops the image Cmd (Docker semantics)', () => {
    expect(build({ Entrypoint: ['env'], Cmd: ['x'] }, { entrypoint: ['sh'] }).process.args).toEqual(['sh']);
    expect(build({ Entrypoint: ['env'], Cmd: ['x'] }, { entrypoint: ['sh'], args: ['-c', 'true'] }).process.args).toEqual(['sh', '-c', 'true']);
  });
  it('refuses an empty command with NO_COMMAND', () => {
    expect(codeOf(() => build({}))).toBe('NO_COMMAND');
    expect(codeOf(() => build({ Cmd: ['sh'] }, { entrypoint: [] }))).toBe('NO_COMMAND');
  });
});

describe('process.env', () => {
  it('keeps image Env, applies -e overrides in place, appends new keys, adds PATH/HOME', () => {
    const spec = build({ Cmd: ['sh'], Env: ['A=1', 'B=2'] }, { env: ['B=override', 'C=3=with=equals'] });
    expect(spec.process.env).toEqual([
      'A=1',
      'B=override',
      'C=3=with=equals',
      'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
      'HOME=/',
    ]);
  });
  it('keeps the image PATH and sets TERM only with a tty', () => {
    const spec = build({ Cmd: ['sh'], Env: ['PATH=/opt/x/bin:/bin'] }, { tty: true });
    expect(spec.process.env).toContain('PATH=/opt/x/bin:/bin');
    expect(spec.process.env).toContain('TERM=xterm');
    expect(spec.process.terminal).toBe(true);
    expect(build({ Cmd: ['sh'] }).process.env.some((e) => e.startsWith('TERM='))).toBe(false);
  });
  it('refuses malformed -e entries with ENV_INVALID', () => {
    for (const bad of ['NOVALUE', '=x', '']) expect(codeOf(() => build({ Cmd: ['sh'] }, { env: [bad] }))).toBe('ENV_INVALID');
  });
});

describe('process.cwd', () => {
  it('defaults to / and uses WorkingDir in clean form', () => {
    expect(build({ Cmd: ['sh'] }).process.cwd).toBe('/');
    expect(build({ Cmd: ['sh'], WorkingDir: '/srv//app/' }).process.cwd).toBe('/srv/app');
    expect(build({ Cmd: ['sh'], WorkingDir: '/srv' }, { cwd: '/tmp' }).process.cwd).toBe('/tmp');
  });
  it('CVE-2024-21626: refuses WorkingDir /proc/self/fd/7 and /../proc', () => {
    expect(codeOf(() => build({ Cmd: ['sh'], WorkingDir: '/proc/self/fd/7' }))).toBe('CWD_INVALID');
    expect(codeOf(() => build({ Cmd: ['sh'], WorkingDir: '/../proc' }))).toBe('CWD_INVALID');
    expect(codeOf(() => build({ Cmd: ['sh'], WorkingDir: '//proc/self/cwd' }))).toBe('CWD_INVALID');
    expect(codeOf(() => build({ Cmd: ['sh'] }, { cwd: '/proc' }))).toBe('CWD_INVALID');
  });
  it('CVE-2024-21626: refuses a WorkingDir that is a rootfs symlink into /proc', async () => {
    await symlink('/proc/self/fd/7', join(rootfs, 'leak'));
    try {
      expect(codeOf(() => build({ Cmd: ['sh'], WorkingDir: '/leak' }))).toBe('CWD_INVALID');
    } finally {
      await unlink(join(rootfs, 'leak'));
    }
  });
  it('refuses relative and ..-containing paths', () => {
    expect(codeOf(() => build({ Cmd: ['sh'], WorkingDir: 'app' }))).toBe('CWD_INVALID');
    expect(codeOf(() => build({ Cmd: ['sh'], WorkingDir: '/srv/../etc' }))).toBe('CWD_INVALID');
  });
});

describe('process.user', () => {
  it('is root for an empty User', () => {
    expect(build({ Cmd: ['sh'] }).process.user).toEqual({ uid: 0, gid: 0 });
  });
  it('takes numeric uid and uid:gid as given', () => {
    expect(build({ Cmd: ['sh'], User: '4242' }).process.user).toEqual({ uid: 4242, gid: 0 });
    expect(build({ Cmd: ['sh'], User: '4242:77' }).process.user).toEqual({ uid: 4242, gid: 77 });
  });
  it('resolves names against the rootfs /etc/passwd and /etc/group, with supplementary groups', () => {
    const spec = build({ Cmd: ['sh'], User: 'app' });
    expect(spec.process.user).toEqual({ uid: 1000, gid: 1000, additionalGids: [2000] });
    expect(spec.process.env).toContain('HOME=/home/app');
    expect(build({ Cmd: ['sh'], User: 'app:extra' }).process.user).toEqual({ uid: 1000, gid: 2000 });
    expect(build({ Cmd: ['sh'], User: '1000' }).process.user).toEqual({ uid: 1000, gid: 1000, additionalGids: [2000] });
    expect(build({ Cmd: ['sh'], User: 'root' }, { user: 'app' }).process.user.uid).toBe(1000);
  });
  it('refuses unknown names', () => {
    expect(codeOf(() => build({ Cmd: ['sh'], User: 'nobody-here' }))).toBe('USER_NOT_FOUND');
    expect(codeOf(() => build({ Cmd: ['sh'], User: 'app:nogroup' }))).toBe('GROUP_NOT_FOUND');
    expect(codeOf(() => build({ Cmd: ['sh'], User: 'app:' }))).toBe('USER_INVALID');
  });
  it('does not follow a symlinked /etc/passwd out of the rootfs to a host file', async () => {
    // A "host" passwd outside the rootfs that knows user evil; the image links to it both ways.
    const hostPasswd = join(dir, 'host-passwd');
    await writeFile(hostPasswd, 'evil:x:4242:4242::/:/bin/sh\n');
    const passwd = join(rootfs, 'etc', 'passwd');
    const saved = join(dir, 'passwd.saved');
    await rename(passwd, saved);
    try {
      await symlink(hostPasswd, passwd); // absolute: resolves to <rootfs><dir>/host-passwd, absent
      expect(codeOf(() => build({ Cmd: ['sh'], User: 'evil' }))).toBe('USER_NOT_FOUND');
      await unlink(passwd);
      await symlink('../../../../../../../../..' + hostPasswd, passwd); // climbs: clamped at rootfs
      expect(codeOf(() => build({ Cmd: ['sh'], User: 'evil' }))).toBe('USER_NOT_FOUND');
      // A symlink that stays inside the rootfs is followed.
      await unlink(passwd);
      await mkdir(join(rootfs, 'usr', 'lib'), { recursive: true });
      await writeFile(join(rootfs, 'usr', 'lib', 'passwd'), 'inside:x:3000:3000::/:/bin/sh\n');
      await symlink('/usr/lib/passwd', passwd);
      expect(build({ Cmd: ['sh'], User: 'inside' }).process.user).toEqual({ uid: 3000, gid: 3000 });
    } finally {
      await rm(passwd, { force: true });
      await rename(saved, passwd);
    }
  });
});

describe('spec shape', () => {
  it('has namespaces, Docker caps, rlimits, masked paths, default mounts and an absolute root', () => {
    const spec = build({ Cmd: ['sh'] }, { containerId: 'abcdef0123456789', readonlyRootfs: true });
    expect(spec.ociVersion).toBe('1.0.2');
    expect(spec.root).toEqual({ path: rootfs, readonly: true });
    expect(spec.hostname).toBe('abcdef012345');
    expect(spec.linux.namespaces.map((n) => n.type).sort()).toEqual(['ipc', 'mount', 'network', 'pid', 'uts']);
    expect(spec.process.capabilities?.bounding).toContain('CAP_NET_BIND_SERVICE');
    expect(spec.process.capabilities?.bounding).not.toContain('CAP_SYS_ADMIN');
    expect(spec.process.rlimits).toEqual([{ type: 'RLIMIT_NOFILE', hard: defaultOpenFilesLimit(false, readText), soft: defaultOpenFilesLimit(false, readText) }]);
    expect(spec.process.noNewPrivileges).toBe(true);
    expect(spec.mounts.map((m) => m.destination)).toEqual(['/proc', '/dev', '/dev/pts', '/dev/shm', '/dev/mqueue', '/sys', '/sys/fs/cgroup', '/tmp', '/var/tmp', '/run']);
    expect(spec.linux.maskedPaths).toContain('/proc/kcore');
    expect(spec.linux.readonlyPaths).toContain('/proc/sys');
    expect(spec.linux.resources?.devices).toEqual([{ allow: false, access: 'rwm' }]);
  });
  it('rootless adds a user namespace with one mapping and drops cgroup device rules', () => {
    const spec = build({ Cmd: ['sh'] }, {}, { rootless: true, hostUid: 1234, hostGid: 5678 });
    expect(spec.linux.namespaces.map((n) => n.type)).toContain('user');
    expect(spec.linux.uidMappings).toEqual([{ containerID: 0, hostID: 1234, size: 1 }]);
    expect(spec.linux.gidMappings).toEqual([{ containerID: 0, hostID: 5678, size: 1 }]);
    expect(spec.linux.resources).toBeUndefined();
    expect(spec.mounts.find((m) => m.destination === '/sys')?.type).toBe('none');
  });
  it('adds bind mounts and refuses destinations under /proc', () => {
    const spec = build({ Cmd: ['sh'] }, { mounts: [{ source: '/etc', destination: '/data/', options: ['rbind', 'ro'] }] });
    expect(spec.mounts.at(-1)).toEqual({ destination: '/data', type: 'bind', source: '/etc', options: ['rbind', 'ro'] });
    expect(codeOf(() => build({ Cmd: ['sh'] }, { mounts: [{ source: '/etc', destination: '/proc/sys' }] }))).toBe('MOUNT_INVALID');
    expect(codeOf(() => build({ Cmd: ['sh'] }, { mounts: [{ source: 'rel', destination: '/x' }] }))).toBe('MOUNT_INVALID');
  });
});

describe('open files', () => {
  const files = (hard: string, capEff: string, nrOpen = '1048576') => (path: string) =>
    ({
      '/proc/self/limits': `Limit                     Soft Limit           Hard Limit           Units     \nMax open files            1024                 ${hard}                files     \n`,
      '/proc/self/status': `Name:\tnode\nCapPrm:\t${capEff}\nCapEff:\t${capEff}\n`,
      '/proc/sys/fs/nr_open': `${nrOpen}\n`,
    })[path];
  const ALL = '000001ffffffffff';
  const NO_SYS_RESOURCE = '000001fffeffffff';

  it("are podman's for a root that may raise them: 1048576, at most the kernel's nr_open, soft = hard", () => {
    expect(defaultOpenFilesLimit(false, files('4096', ALL))).toBe(1_048_576);
    expect(defaultOpenFilesLimit(false, files('4096', ALL, '65536'))).toBe(65_536);
    expect(defaultOpenFilesLimit(false, files('unlimited', NO_SYS_RESOURCE))).toBe(1_048_576);
    expect(build({ Cmd: ['sh'] }, {}, { openFiles: 4096 }).process.rlimits).toEqual([{ type: 'RLIMIT_NOFILE', hard: 4096, soft: 4096 }]);
  });

  it('are the hard limit this process has when the runtime cannot raise it: rootless, or root without CAP_SYS_RESOURCE', () => {
    expect(defaultOpenFilesLimit(true, files('524288', ALL))).toBe(524_288);
    expect(defaultOpenFilesLimit(false, files('20000', NO_SYS_RESOURCE))).toBe(20_000);
    expect(defaultOpenFilesLimit(true, () => undefined)).toBe(1024);
  });
});

describe('network', () => {
  const hostFiles = ['/etc/resolv.conf', '/etc/hosts'].filter((f) => existsSync(f));

  it('none (the default) is a network namespace of its own and binds nothing of the host', () => {
    for (const spec of [build({ Cmd: ['sh'] }), build({ Cmd: ['sh'] }, { network: 'none' })]) {
      expect(spec.linux.namespaces.map((n) => n.type)).toContain('network');
      expect(spec.mounts.filter((m) => m.type === 'bind')).toEqual([]);
    }
  });

  it("host leaves the network namespace out and binds the host's resolv.conf and hosts read-only", () => {
    const spec = build({ Cmd: ['sh'] }, { network: 'host' });
    expect(spec.linux.namespaces.map((n) => n.type).sort()).toEqual(['ipc', 'mount', 'pid', 'uts']);
    expect(spec.mounts.filter((m) => m.type === 'bind').map((m) => [m.source, m.destination, m.options?.includes('ro')])).toEqual(hostFiles.map((f) => [f, f, true]));
  });

  it("host: a -v on /etc/hosts replaces the host's file instead of being mounted over by it", () => {
    const spec = build({ Cmd: ['sh'] }, { network: 'host', mounts: [{ source: '/dev/null', destination: '/etc/hosts' }] });
    expect(spec.mounts.filter((m) => m.destination === '/etc/hosts').map((m) => m.source)).toEqual(['/dev/null']);
  });

  it("host takes the host's name unless --hostname gives one; none keeps the id's", () => {
    expect(build({ Cmd: ['sh'] }, { network: 'host', containerId: 'abcdef0123456789' }, { hostName: 'node-7.example' }).hostname).toBe('node-7.example');
    expect(build({ Cmd: ['sh'] }, { network: 'host', containerId: 'abcdef0123456789', hostname: 'web' }, { hostName: 'node-7' }).hostname).toBe('web');
    expect(build({ Cmd: ['sh'] }, { network: 'none', containerId: 'abcdef0123456789' }, { hostName: 'node-7' }).hostname).toBe('abcdef012345');
    // A host name a container cannot take (an underscore) leaves the id's.
    expect(build({ Cmd: ['sh'] }, { network: 'host', containerId: 'abcdef0123456789' }, { hostName: 'my_host' }).hostname).toBe('abcdef012345');
  });

  it('host in a rootless spec keeps the user namespace', () => {
    const spec = build({ Cmd: ['sh'] }, { network: 'host' }, { rootless: true, hostUid: 1000, hostGid: 1000 });
    expect(spec.linux.namespaces.map((n) => n.type).sort()).toEqual(['ipc', 'mount', 'pid', 'user', 'uts']);
  });
});

describe('readonlyRootfs', () => {
  it('mounts the root read-only with tmpfs scratch on /tmp, /var/tmp and /run, except where a bind mount goes', () => {
    expect(build({ Cmd: ['sh'] }).mounts.filter((m) => m.type === 'tmpfs').map((m) => m.destination)).toEqual(['/dev', '/dev/shm']);
    const spec = build({ Cmd: ['sh'] }, { readonlyRootfs: true, mounts: [{ source: '/etc', destination: '/run', options: ['rbind', 'ro'] }] });
    expect(spec.root.readonly).toBe(true);
    expect(spec.mounts.filter((m) => m.type === 'tmpfs' && !m.destination.startsWith('/dev')).map((m) => [m.destination, m.options])).toEqual([
      ['/tmp', ['nosuid', 'nodev', 'mode=1777']],
      ['/var/tmp', ['nosuid', 'nodev', 'mode=1777']],
    ]);
    expect(spec.mounts.find((m) => m.destination === '/run')?.type).toBe('bind');
  });
});
