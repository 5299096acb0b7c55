/**
 * The subset of the OCI runtime-spec 1.0.2 `config.json` that hostpull writes
 * (https://github.com/opencontainers/runtime-spec/blob/v1.0.2/config.md). Only fields we set are
 * typed; runc and crun ignore nothing we leave out that would matter.
 */
export interface RuntimeSpec {
  ociVersion: string;
  process: RuntimeProcess;
  root: { path: string; readonly?: boolean };
  hostname?: string;
  mounts: RuntimeMount[];
  annotations?: Record<string, string>;
  linux: RuntimeLinux;
}

export interface RuntimeProcess {
  terminal?: boolean;
  consoleSize?: { height: number; width: number };
  user: { uid: number; gid: number; additionalGids?: number[] };
  args: string[];
  env: string[];
  cwd: string;
  capabilities?: {
    bounding?: string[];
    effective?: string[];
    inheritable?: string[];
    permitted?: string[];
    ambient?: string[];
  };
  rlimits?: { type: string; hard: number; soft: number }[];
  noNewPrivileges?: boolean;
}

export interface RuntimeMount {
  destination: string;
  type?: string;
  source?: string;
  options?: string[];
}

export interface IdMapping {
  containerID: number;
  hostID: number;
  size: number;
}

export interface RuntimeLinux {
  namespaces: { type: 'pid' | 'network' | 'mount' | 'ipc' | 'uts' | 'user' | 'cgroup'; path?: string }[];
  uidMappings?: IdMapping[];
  gidMappings?: IdMapping[];
  resources?: { devices?: { allow: boolean; type?: string; major?: number; minor?: number; access?: string }[] };
  cgroupsPath?: string;
  maskedPaths?: string[];
  readonlyPaths?: string[];
}
