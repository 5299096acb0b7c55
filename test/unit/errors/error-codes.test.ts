/**
 * The one table of error codes (src/error-codes.ts). The compiler refuses a HostpullError whose
 * code has no row; these tests refuse a row that nothing in src/ throws, and check that every
 * edge (server, daemon, snapshotter, CLI) answers each code as its row says.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { describeError, ERROR_CODES, errorRow, errorFromJson, errorText, errorToJson, HostpullError, httpAnswerFor, isErrorCode, type ErrorCode } from '../../../src/errors.js';
import { RegistryError } from '../../../src/registry/index.js';
import { toOciError } from '../../../src/server/oci-error.js';
import { REPO_ROOT } from '../../helpers/cli.js';

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    return e.isDirectory() ? sourceFiles(p) : e.name.endsWith('.ts') ? [p] : [];
  });
}

const TABLE = join(REPO_ROOT, 'src', 'error-codes.ts');

interface CodeLiteral {
  file: string;
  text: string;
  /** It only tests an error (`err.code === 'X'`, `isHostpullError(err, 'X')`): it produces nothing. */
  comparison: boolean;
  /** The first argument of `new HostpullError(…)` or `new RegistryError(…)`. */
  constructed: boolean;
}

/** Every UPPER_SNAKE string literal of src/ outside the table, parsed with TypeScript (comments and regexps are not literals). */
function codeLiterals(): CodeLiteral[] {
  const out: CodeLiteral[] = [];
  for (const file of sourceFiles(join(REPO_ROOT, 'src')).filter((f) => f !== TABLE)) {
    const source = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.ES2022, true);
    const visit = (node: ts.Node): void => {
      if ((ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node)) && /^[A-Z][A-Z0-9_]+$/.test(node.text)) {
        const parent = node.parent;
        const comparison =
          (ts.isBinaryExpression(parent) && [ts.SyntaxKind.EqualsEqualsEqualsToken, ts.SyntaxKind.ExclamationEqualsEqualsToken].includes(parent.operatorToken.kind)) ||
          (ts.isCallExpression(parent) && /^is(Hostpull|Registry)Error$/.test(parent.expression.getText()) && parent.arguments[1] === node);
        const constructed = ts.isNewExpression(parent) && /^(Hostpull|Registry)Error$/.test(parent.expression.getText()) && parent.arguments?.[0] === node;
        out.push({ file: file.slice(REPO_ROOT.length + 1), text: node.text, comparison, constructed });
      }
      ts.forEachChild(node, visit);
    };
    visit(source);
  }
  return out;
}

const literals = codeLiterals();

/** Where `code` is produced: a literal that is not a comparison. */
function producers(code: string): string[] {
  return literals.filter((l) => l.text === code && !l.comparison).map((l) => l.file);
}

const codes = Object.keys(ERROR_CODES) as ErrorCode[];

describe('the error table', () => {
  it('has a row for every code a constructor is given literally (the compiler checks the rest)', () => {
    const thrown = new Set(literals.filter((l) => l.constructed).map((l) => l.text));
    expect(thrown.size).toBeGreaterThan(80);
    expect([...thrown].filter((c) => !isErrorCode(c))).toEqual([]);
  });

  it.each(codes)('%s is thrown somewhere in src/', (code) => {
    expect(producers(code)).not.toEqual([]);
  });

  it('finds codes that are only compared, so the check above can fail', () => {
    // ENOENT is compared (errnoCode(err) === 'ENOENT') all over src/ and produced nowhere.
    expect(literals.filter((l) => l.text === 'ENOENT').length).toBeGreaterThan(5);
    expect(producers('ENOENT')).toEqual([]);
  });

  it.each(codes)('%s has a meaning, an HTTP status and an exit code', (code) => {
    const row = errorRow(code);
    expect(row.meaning.length).toBeGreaterThan(10);
    expect(row.http).toBeGreaterThanOrEqual(400);
    expect(row.http).toBeLessThan(600);
    expect([1, 2, 125, 126, 127]).toContain(row.exit);
  });
});

describe('every edge answers a code as its row says', () => {
  it.each(codes)('%s: server status and OCI code, daemon status, wire round trip', (code) => {
    const row = errorRow(code);
    const err = new HostpullError(code, `it is ${code}`);
    const oci = toOciError(err);
    expect(oci.status).toBe(row.http);
    expect(oci.body.errors[0]!.code).toBe(row.http === 500 ? 'INTERNAL' : row.oci);
    // A 500 is a fault of this host: the server does not show its message.
    expect(oci.body.errors[0]!.message).toBe(row.http === 500 ? 'internal server error' : `it is ${code}`);
    expect(httpAnswerFor(err).status).toBe(row.http);
    expect(errorFromJson(errorToJson(err)).code).toBe(code);
  });

  it('a registry error is a gateway answer whatever its code', () => {
    expect(httpAnswerFor(new RegistryError('UNAUTHORIZED', 'upstream said 401', { status: 401 }))).toEqual({ status: 502, oci: 'UPSTREAM_ERROR', upstream: true });
    expect(httpAnswerFor(new RegistryError('REGISTRY_UNAVAILABLE', 'refused'))).toEqual({ status: 503, oci: 'UNAVAILABLE', upstream: true });
  });

  it('a code from a peer this hostpull does not know arrives under the code the receiver names', () => {
    const e = errorFromJson({ code: 'FROM_THE_FUTURE', message: 'new' }, 'DAEMON_ERROR');
    expect(e.code).toBe('DAEMON_ERROR');
    expect(e.details).toEqual({ peerCode: 'FROM_THE_FUTURE' });
  });

  it('USAGE alone exits 2; a container that could not start exits as podman\'s does (125, 126, 127)', () => {
    expect(Object.fromEntries(codes.filter((c) => errorRow(c).exit !== 1).map((c) => [c, errorRow(c).exit]))).toEqual({
      USAGE: 2,
      RUNTIME_FAILED: 125,
      COMMAND_NOT_EXECUTABLE: 126,
      COMMAND_NOT_FOUND: 127,
    });
  });
});

describe('an error as text', () => {
  it("is an Error's message, or the thrown value itself", () => {
    expect(errorText(new Error('disk on fire'))).toBe('disk on fire');
    expect(errorText('plain string')).toBe('plain string');
    expect(errorText(42)).toBe('42');
  });

  it('leads with the code of a HostpullError, and only then', () => {
    expect(describeError(new HostpullError('LAZY_TIMEOUT', 'no data'))).toBe('LAZY_TIMEOUT: no data');
    expect(describeError(new RegistryError('REGISTRY_UNAVAILABLE', 'refused'))).toBe('REGISTRY_UNAVAILABLE: refused');
    expect(describeError(new TypeError('bad'))).toBe('bad');
    expect(describeError(undefined)).toBe('undefined');
  });
});
