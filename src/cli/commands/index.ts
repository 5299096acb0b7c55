import type { Command } from 'commander';
import { registerImagesCommand } from './images.js';
import { registerInspectCommand } from './inspect.js';
import { registerPullCommand } from './pull.js';
import { registerStatsCommand } from './stats.js';

/** Every verb registers itself on the program; the order here is the order in `--help`. */
export const commands: Array<(program: Command) => void> = [registerPullCommand, registerImagesCommand, registerInspectCommand, registerStatsCommand];
