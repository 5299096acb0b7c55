import type { Command } from 'commander';
import { registerImagesCommand } from './images.js';
import { registerInspectCommand } from './inspect.js';
import { registerMountCommands } from './mount.js';
import { registerPullCommand } from './pull.js';
import { registerRunCommand } from './run.js';
import { registerStatsCommand } from './stats.js';
import { registerServeCommand } from './serve.js';
import { registerPublishCommand } from './publish.js';
import { registerCatalogCommand } from './catalog.js';
import { registerDemoCommand } from './demo.js';
import { registerBenchCommand } from './bench.js';
import { registerDaemonCommand } from './daemon.js';
import { registerGcCommand } from './gc.js';
import { registerVerifyCommand } from './verify.js';

/** Every verb registers itself on the program; the order here is the order in `--help`. */
export const commands: Array<(program: Command) => void> = [registerPullCommand, registerRunCommand, registerMountCommands, registerImagesCommand, registerInspectCommand, registerStatsCommand, registerServeCommand, registerPublishCommand, registerCatalogCommand, registerGcCommand, registerVerifyCommand, registerDaemonCommand, registerBenchCommand, registerDemoCommand];
