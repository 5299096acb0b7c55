/**
 * Names of the globals through which the CLI's startup snapshot (snapshot-main.ts) reaches what
 * only the running process has; scripts/bundle.mjs points the bundle's uses at them.
 */
export const SNAPSHOT_GLOBALS = {
  /** `require` of the running process, from dist/cli/: the packages in node_modules. */
  require: '__hostpullSnapshotRequire',
  /** What `import.meta.url` is in the bundle: the URL of dist/cli/snapshot-main.cjs, where the build is now. */
  moduleUrl: '__hostpullSnapshotModuleUrl',
} as const;
