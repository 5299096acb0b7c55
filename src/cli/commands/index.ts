import type { Command } from 'commander';

/** A module that registers one or more verbs on the program. */
export interface CommandModule {
  /** The verbs it registers (the first word after the global options). */
  verbs: readonly string[];
  load(): Promise<(program: Command) => void>;
}

/**
 * Every verb and the module that registers it; the order here is the order in `--help`. Modules
 * are loaded when needed: a command line naming one verb loads only that module (program.ts), so
 * `hostpull pull` does not pay for loading serve, publish, bench and demo.
 */
export const COMMANDS: readonly CommandModule[] = [
  { verbs: ['pull'], load: async () => (await import('./pull.js')).registerPullCommand },
  { verbs: ['run'], load: async () => (await import('./run.js')).registerRunCommand },
  { verbs: ['ps'], load: async () => (await import('./ps.js')).registerPsCommand },
  { verbs: ['exec'], load: async () => (await import('./exec.js')).registerExecCommand },
  { verbs: ['stop', 'kill'], load: async () => (await import('./stop.js')).registerStopCommands },
  { verbs: ['rm'], load: async () => (await import('./rm.js')).registerRmCommand },
  { verbs: ['mount', 'umount'], load: async () => (await import('./mount.js')).registerMountCommands },
  { verbs: ['images'], load: async () => (await import('./images.js')).registerImagesCommand },
  { verbs: ['rmi'], load: async () => (await import('./rmi.js')).registerRmiCommand },
  { verbs: ['inspect'], load: async () => (await import('./inspect.js')).registerInspectCommand },
  { verbs: ['login', 'logout'], load: async () => (await import('./login.js')).registerLoginCommands },
  { verbs: ['stats'], load: async () => (await import('./stats.js')).registerStatsCommand },
  { verbs: ['serve'], load: async () => (await import('./serve.js')).registerServeCommand },
  { verbs: ['publish'], load: async () => (await import('./publish.js')).registerPublishCommand },
  { verbs: ['catalog'], load: async () => (await import('./catalog.js')).registerCatalogCommand },
  { verbs: ['gc'], load: async () => (await import('./gc.js')).registerGcCommand },
  { verbs: ['verify'], load: async () => (await import('./verify.js')).registerVerifyCommand },
  { verbs: ['daemon'], load: async () => (await import('./daemon.js')).registerDaemonCommand },
  { verbs: ['bench'], load: async () => (await import('./bench.js')).registerBenchCommand },
  { verbs: ['demo'], load: async () => (await import('./demo.js')).registerDemoCommand },
];
