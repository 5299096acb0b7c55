/**
 * The Node options of this process that a forked Node process should have too: all but those
 * that start Node from a startup snapshot. The CLI may run from its snapshot (cli/snapshot-main.ts),
 * and a child given `--snapshot-blob` would start as that CLI instead of the script it was forked
 * to run.
 */
export function inheritableExecArgv(execArgv: readonly string[] = process.execArgv): string[] {
  const kept: string[] = [];
  for (let i = 0; i < execArgv.length; i++) {
    const arg = execArgv[i]!;
    if (arg === '--snapshot-blob') i++; // and its value
    else if (!arg.startsWith('--snapshot-blob=') && arg !== '--build-snapshot') kept.push(arg);
  }
  return kept;
}
