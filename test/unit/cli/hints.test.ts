/**
 * Every hint that tells the user to run a hostpull command names one that exists, with flags and
 * arguments that parse: each `hostpull …` command line quoted in a hint anywhere in src/ is run
 * through the real commander program (parsing only, no action). A hint once sent users to
 * `hostpull gc --verify`, which never existed.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { buildProgram } from '../../../src/cli/program.js';
import { REPO_ROOT } from '../../helpers/cli.js';

interface Hint {
  file: string;
  text: string;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    return e.isDirectory() ? sourceFiles(p) : e.name.endsWith('.ts') ? [p] : [];
  });
}

/** A string literal starting at src[i] (a quote or backtick): its text (`${…}` → X) and where it ends. */
function readLiteral(src: string, i: number): { text: string; end: number } {
  const quote = src[i]!;
  let text = '';
  let j = i + 1;
  while (j < src.length && src[j] !== quote) {
    if (src[j] === '\\') {
      text += src[j + 1];
      j += 2;
    } else if (quote === '`' && src[j] === '$' && src[j + 1] === '{') {
      let depth = 1;
      j += 2;
      while (depth > 0 && j < src.length) {
        if (src[j] === '{') depth++;
        else if (src[j] === '}') depth--;
        else if (src[j] === "'" || src[j] === '"' || src[j] === '`') j = readLiteral(src, j).end - 1;
        j++;
      }
      text += 'X';
    } else {
      text += src[j++];
    }
  }
  return { text, end: j + 1 };
}

/**
 * String literals of hint expressions: what follows `hint:`, `hint =`, `…_HINT =`, or the body of
 * a function named `…Hint(`, up to the end of that expression or body.
 */
function hintsIn(file: string): Hint[] {
  const src = readFileSync(file, 'utf8');
  const out: Hint[] = [];
  const re = /\b(\w*(?:hint|Hint|HINT))\s*(\??:|=(?!=)|\()/g;
  for (let m = re.exec(src); m; m = re.exec(src)) {
    let i = m.index + m[0].length;
    let depth = 0;
    if (m[2] === '(') {
      // A function: skip to its body.
      i = src.indexOf('{', i);
      if (i < 0) continue;
    }
    for (; i < src.length; i++) {
      const c = src[i]!;
      if (c === "'" || c === '"' || c === '`') {
        const lit = readLiteral(src, i);
        out.push({ file, text: lit.text });
        i = lit.end - 1;
      } else if (c === '(' || c === '[' || c === '{') {
        depth++;
      } else if (c === ')' || c === ']' || c === '}') {
        if (--depth < 0) break;
        if (depth === 0 && m[2] === '(') break;
      } else if ((c === ',' || c === ';' || c === '\n') && depth === 0 && m[2] !== '(') {
        // A hint spread over lines continues after an operator at the line end (`??`, `:`, `+`).
        if (c === '\n' && /[?:+|&(=]\s*$/.test(src.slice(Math.max(0, i - 3), i))) continue;
        break;
      }
    }
  }
  return out;
}

/** Checks a command line against the program; returns what is wrong, or undefined when it parses. */
function commandProblem(program: Command, argv: string[]): string | undefined {
  let cmd = program;
  let args = argv;
  for (;;) {
    const { operands, unknown } = cmd.parseOptions(args);
    const sub = operands[0] === undefined ? undefined : cmd.commands.find((c) => c.name() === operands[0] || c.aliases().includes(operands[0]!));
    if (sub) {
      cmd = sub;
      args = [...operands.slice(1), ...unknown];
      continue;
    }
    if (cmd.commands.length > 0) return `"${cmd.name()}" needs one of: ${cmd.commands.map((c) => c.name()).join(', ')}`;
    if (unknown.length > 0) return `unknown option ${unknown[0]} for "${cmd.name()}"`;
    const defs = cmd.registeredArguments;
    const required = defs.filter((a) => a.required).length;
    if (operands.length < required) return `"${cmd.name()}" needs ${required} argument(s), got ${operands.length}`;
    if (!defs.some((a) => a.variadic) && operands.length > defs.length) return `"${cmd.name()}" takes ${defs.length} argument(s), got ${operands.length}`;
    for (const o of cmd.options) {
      if (o.mandatory && cmd.getOptionValue(o.attributeName()) === undefined) return `"${cmd.name()}" needs ${o.long}`;
    }
    return undefined;
  }
}

/** The program with commander's own error output (and help after it) silenced: the checks read the errors. */
function quiet(program: Command): Command {
  const silence = (c: Command): void => {
    c.configureOutput({ writeErr: () => undefined, writeOut: () => undefined });
    c.commands.forEach(silence);
  };
  silence(program);
  return program;
}

/** Placeholders a hint may write for a typed value, and a value of that type (options parse their values). */
const PLACEHOLDER_SAMPLES: Record<string, string> = { SIZE: '10G', DURATION: '10m' };

/** A fresh program per line: parsing options leaves their values on it. */
async function check(line: string): Promise<string | undefined> {
  const words = line
    .trim()
    .split(/\s+/)
    .map((w) => PLACEHOLDER_SAMPLES[w] ?? w);
  if (words[0] !== 'hostpull') return `not a hostpull command line: ${line}`;
  return commandProblem(quiet(await buildProgram()), words.slice(1));
}

const hints = sourceFiles(join(REPO_ROOT, 'src')).flatMap(hintsIn);
/** Backticked command lines in hints: `hostpull …`. */
const commandLines = hints.flatMap((h) => [...h.text.matchAll(/`(hostpull [^`]*)`/g)].map((m) => ({ file: h.file, line: m[1]! })));

describe('hints name commands that exist', () => {
  it('finds the hints of src/ (so the checks below cannot pass on nothing)', () => {
    expect(hints.length).toBeGreaterThan(40);
    expect(commandLines.length).toBeGreaterThanOrEqual(10);
    expect(commandLines.map((c) => c.line)).toContain('hostpull verify --repair');
  });

  it('the checker refuses commands and flags that do not exist', async () => {
    expect(await check('hostpull gc --verify')).toMatch(/unknown option --verify/);
    expect(await check('hostpull frobnicate')).toBeDefined();
    expect(await check('hostpull catalog')).toMatch(/needs one of/);
    expect(await check('hostpull publish DIR')).toMatch(/needs --code/);
    expect(await check('hostpull pull')).toMatch(/needs 1 argument/);
    expect(await check('hostpull --server HOST pull REF')).toBeUndefined();
    expect(await check('hostpull gc --max-store-size SIZE --min-age DURATION')).toBeUndefined();
    await expect(check('hostpull gc --min-age 30')).rejects.toThrow(/has no unit/);
  });

  it('every "hostpull <command>" in a hint is quoted in backticks', () => {
    const bare = hints.filter((h) => /(^|[^\w./-])hostpull [a-z-]/.test(h.text.replace(/`[^`]*`/g, '')));
    expect(bare.map((h) => `${h.file}: ${h.text}`)).toEqual([]);
  });

  it.each(commandLines.map((c) => [c.line, c.file.slice(REPO_ROOT.length + 1)] as const))('`%s` (%s) parses', async (line) => {
    expect(await check(line)).toBeUndefined();
  });

  // Quoted command lines are checked above (hostpull's) or are other tools' (`groupadd --system`).
  it('every --flag a hint names outside a quoted command line is an option of some hostpull command', async () => {
    const program = await buildProgram();
    const all = (cmd: Command): Command[] => [cmd, ...cmd.commands.flatMap(all)];
    const known = new Set(all(program).flatMap((c) => c.options.flatMap((o) => [o.long, o.negate ? o.long!.replace(/^--no-/, '--') : undefined]).filter((f): f is string => f !== undefined)));
    known.add('--help');
    const named = hints.flatMap((h) => [...h.text.replace(/`[^`]*`/g, '').matchAll(/(?<![\w-])--[a-z][a-z0-9-]*/g)].map((m) => ({ file: h.file.slice(REPO_ROOT.length + 1), flag: m[0] })));
    expect(named.length).toBeGreaterThan(5);
    expect(named.filter((n) => !known.has(n.flag))).toEqual([]);
  });
});
