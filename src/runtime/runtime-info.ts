/** An OCI runtime binary that hostpull can drive (both take the same CLI for what we use). */
export interface RuntimeInfo {
  name: 'runc' | 'crun';
  /** Absolute path of the binary. */
  path: string;
  /** Version as printed by `<runtime> --version` (e.g. "1.1.5+ds1"). */
  version: string;
}
