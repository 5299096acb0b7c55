/**
 * containerd's filter expressions, as List (Walk) sends them, e.g.
 * `kind==committed,name=="sha256:…",labels."containerd.io/snapshot.ref"=="sha256:…"`:
 * a filter is selectors joined by `,` (all must match); a request's filters are alternatives (any
 * may match). A selector is a field path (`.`-separated; a component may be "quoted"), optionally
 * an operator (`==`, `!=`, `~=` for a regular expression) and a value (bare, "quoted" with
 * backslash escapes, or /quoted/ for regular expressions). A bare field path tests presence.
 */
import { HostpullError } from '../errors.js';

export type Operator = '==' | '!=' | '~=';

export interface Selector {
  path: string[];
  operator?: Operator;
  value?: string;
}

/** A parsed filter: every selector must match. */
export type Filter = Selector[];

/** Looks up a field path on the object being filtered: undefined when it has no such field. */
export type FieldLookup = (path: readonly string[]) => string | undefined;

function invalid(input: string, pos: number, what: string): HostpullError {
  return new HostpullError('FILTER_INVALID', `filter ${JSON.stringify(input)}: ${what} at offset ${pos}`, {
    hint: 'filters look like kind==committed,labels."containerd.io/snapshot.ref"=="sha256:…"',
  });
}

const FIELD_CHAR = /[A-Za-z0-9_-]/;

class Scanner {
  pos = 0;
  constructor(readonly input: string) {}

  get done(): boolean {
    return this.pos >= this.input.length;
  }

  peek(): string {
    return this.input[this.pos] ?? '';
  }

  skipSpace(): void {
    while (!this.done && /\s/.test(this.peek())) this.pos++;
  }

  /** A "…" or /…/ quoted string; backslash escapes the next character (\n, \t kept as such). */
  quoted(): string {
    const quote = this.peek();
    const start = this.pos++;
    let out = '';
    for (;;) {
      if (this.done) throw invalid(this.input, start, 'unterminated quoted string');
      const c = this.input[this.pos++]!;
      if (c === quote) return out;
      if (c === '\\') {
        if (this.done) throw invalid(this.input, start, 'unterminated quoted string');
        const e = this.input[this.pos++]!;
        out += e === 'n' ? '\n' : e === 't' ? '\t' : quote === '/' && e !== '/' ? `\\${e}` : e;
      } else out += c;
    }
  }

  field(): string {
    this.skipSpace();
    if (this.peek() === '"') return this.quoted();
    const start = this.pos;
    while (!this.done && FIELD_CHAR.test(this.peek())) this.pos++;
    if (this.pos === start) throw invalid(this.input, start, 'expected a field name');
    return this.input.slice(start, this.pos);
  }

  operator(): Operator | undefined {
    this.skipSpace();
    const two = this.input.slice(this.pos, this.pos + 2);
    if (two === '==' || two === '!=' || two === '~=') {
      this.pos += 2;
      return two;
    }
    return undefined;
  }

  value(): string {
    this.skipSpace();
    const c = this.peek();
    if (c === '"' || c === '/') return this.quoted();
    const start = this.pos;
    while (!this.done && this.peek() !== ',') this.pos++;
    const v = this.input.slice(start, this.pos).trim();
    if (v === '') throw invalid(this.input, start, 'expected a value');
    return v;
  }
}

/** Parses one filter expression (an empty string matches everything). */
export function parseFilter(input: string): Filter {
  const s = new Scanner(input);
  const out: Filter = [];
  s.skipSpace();
  if (s.done) return out;
  for (;;) {
    const path = [s.field()];
    while (s.peek() === '.') {
      s.pos++;
      path.push(s.field());
    }
    const operator = s.operator();
    out.push(operator ? { path, operator, value: s.value() } : { path });
    s.skipSpace();
    if (s.done) return out;
    if (s.peek() !== ',') throw invalid(input, s.pos, `unexpected ${JSON.stringify(s.peek())}`);
    s.pos++;
  }
}

function matchSelector(sel: Selector, lookup: FieldLookup): boolean {
  const got = lookup(sel.path);
  if (sel.operator === undefined) return got !== undefined && got !== '';
  if (sel.operator === '==') return got === sel.value;
  if (sel.operator === '!=') return got !== sel.value;
  if (got === undefined) return false;
  try {
    return new RegExp(sel.value!).test(got);
  } catch (err) {
    throw new HostpullError('FILTER_INVALID', `filter regular expression ${JSON.stringify(sel.value)}: ${(err as Error).message}`, { cause: err });
  }
}

/** Compiles a request's filters into a predicate: true when any filter has every selector matching. */
export function compileFilters(filters: readonly string[]): (lookup: FieldLookup) => boolean {
  const parsed = filters.filter((f) => f.trim() !== '').map(parseFilter);
  if (parsed.length === 0) return () => true;
  return (lookup) => parsed.some((f) => f.every((sel) => matchSelector(sel, lookup)));
}
