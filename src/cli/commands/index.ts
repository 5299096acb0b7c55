import type { Command } from 'commander';

/** Every verb registers itself on the program; the order here is the order in `--help`. */
export const commands: Array<(program: Command) => void> = [];
