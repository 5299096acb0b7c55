import type { RuntimeMount } from './spec-types.js';

/** OCI runtime-spec version written in config.json; runc 1.1 and crun 1.8 both accept it. */
export const OCI_VERSION = '1.0.2';

/**
 * Docker's default capability set (moby `oci/caps/defaults.go`): what images expect to work
 * (chown in entrypoints, binding port 80, ping via raw sockets) without CAP_SYS_ADMIN & co.
 */
export const DEFAULT_CAPABILITIES: readonly string[] = [
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_FSETID',
  'CAP_FOWNER',
  'CAP_MKNOD',
  'CAP_NET_RAW',
  'CAP_SETGID',
  'CAP_SETUID',
  'CAP_SETFCAP',
  'CAP_SETPCAP',
  'CAP_NET_BIND_SERVICE',
  'CAP_SYS_CHROOT',
  'CAP_KILL',
  'CAP_AUDIT_WRITE',
];

/** Paths `runc spec` masks (bind of /dev/null or an empty ro tmpfs): host information leaks. */
export const MASKED_PATHS: readonly string[] = [
  '/proc/acpi',
  '/proc/asound',
  '/proc/kcore',
  '/proc/keys',
  '/proc/latency_stats',
  '/proc/timer_list',
  '/proc/timer_stats',
  '/proc/sched_debug',
  '/proc/scsi',
  '/sys/firmware',
];

/** Paths `runc spec` remounts read-only: writing them would reconfigure the host kernel. */
export const READONLY_PATHS: readonly string[] = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'];

/**
 * The mounts of `runc spec` (and `runc spec --rootless`). Rootless differences: a user namespace
 * cannot mount a fresh sysfs unless it also owns the network namespace *and* the kernel allows it,
 * so /sys is a read-only recursive bind like runc's rootless template; devpts gets no `gid=5`
 * because gid 5 is not mapped in a single-id user namespace.
 */
export function defaultMounts(rootless: boolean): RuntimeMount[] {
  return [
    { destination: '/proc', type: 'proc', source: 'proc' },
    { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
    {
      destination: '/dev/pts',
      type: 'devpts',
      source: 'devpts',
      options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', ...(rootless ? [] : ['gid=5'])],
    },
    { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] },
    { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
    rootless
      ? { destination: '/sys', type: 'none', source: '/sys', options: ['rbind', 'nosuid', 'noexec', 'nodev', 'ro'] }
      : { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
    { destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: ['nosuid', 'noexec', 'nodev', 'relatime', 'ro'] },
  ];
}

/** podman's open-files limit for a container a root user runs (soft = hard), where the kernel allows it. */
const ROOTFUL_NOFILE = 1_048_576;

/** CAP_SYS_RESOURCE: what raising a hard rlimit takes (a root in a restricted container may lack it). */
const CAP_SYS_RESOURCE = 24n;

/**
 * RLIMIT_NOFILE of a container, soft = hard, as podman sets it: 1048576 (at most the kernel's
 * fs.nr_open) when the runtime may raise a hard limit, i.e. runs as root with CAP_SYS_RESOURCE;
 * otherwise (rootless, or a root without that capability) the hard limit this process has, which
 * the runtime cannot exceed. Not runc's and containerd 1.x's 1024/1024: a JVM raises its soft
 * limit to the hard one, and a Gradle or Maven build with many jars open hits 1024.
 */
export function defaultOpenFilesLimit(rootless: boolean, readText: (path: string) => string | undefined): number {
  const nrOpen = Number(readText('/proc/sys/fs/nr_open')?.trim());
  const ceiling = Number.isSafeInteger(nrOpen) && nrOpen > 0 ? Math.min(ROOTFUL_NOFILE, nrOpen) : ROOTFUL_NOFILE;
  // "Max open files            1024                 20000                files"
  const hardText = readText('/proc/self/limits')
    ?.split('\n')
    .find((l) => l.startsWith('Max open files'))
    ?.split(/\s{2,}/)[2];
  const hard = hardText === 'unlimited' ? Number.POSITIVE_INFINITY : Number(hardText);
  const known = hard > 0 && (Number.isSafeInteger(hard) || hard === Number.POSITIVE_INFINITY);
  const effective = /^CapEff:\s*([0-9a-f]+)$/m.exec(readText('/proc/self/status') ?? '')?.[1];
  const mayRaise = !rootless && effective !== undefined && ((BigInt(`0x${effective}`) >> CAP_SYS_RESOURCE) & 1n) === 1n;
  if (mayRaise || (known && hard >= ceiling)) return ceiling;
  return known ? hard : 1024;
}
