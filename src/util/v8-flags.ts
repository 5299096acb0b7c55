import { setFlagsFromString } from 'node:v8';

/** Flags set through {@link applyV8Flags}, in order. */
const applied: string[] = [];

/**
 * Sets V8 flags in this process (for isolates started from now on too) and remembers them. Flags
 * set at run time are not in `process.execArgv`, so a node process forked later would run with
 * V8's defaults: {@link appliedV8Flags} gives them to it.
 */
export function applyV8Flags(flags: readonly string[]): void {
  for (const flag of flags) {
    // Once each: a lazy run sets its verb's flags before commander does (cli/early-lazy-helper.ts).
    if (applied.includes(flag)) continue;
    setFlagsFromString(flag);
    applied.push(flag);
  }
}

/** The flags {@link applyV8Flags} set in this process, for the command line of a node process it forks. */
export function appliedV8Flags(): string[] {
  return [...applied];
}
