/**
 * The shape of src/ that ARCHITECTURE.md describes, checked on the source with the TypeScript
 * parser: each folder is reached through its face (index.ts), a face exports only what other
 * folders use, dependencies point down, the store's tables are the store's, and nothing below
 * the CLI prints to the terminal.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../helpers/cli.js';

const SRC = join(REPO_ROOT, 'src');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    return e.isDirectory() ? sourceFiles(p) : e.name.endsWith('.ts') ? [p] : [];
  });
}

/** The folder of src/ a file is in, or undefined for the top-level files (errors.ts, log.ts…). */
function folderOf(file: string): string | undefined {
  const rel = relative(SRC, file);
  return rel.includes('/') ? rel.split('/')[0] : undefined;
}

interface Import {
  from: string;
  /** The module imported, as a path under src/ with .ts. */
  target: string;
  /** Names imported (`default`/`*` are not used in src/). */
  names: string[];
  typeOnly: boolean;
}

/** Every relative import of a file: static imports, re-exports and `import()` calls. */
function importsOf(file: string): Import[] {
  const source = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.ES2022, true);
  const out: Import[] = [];
  const add = (spec: string, names: string[], typeOnly: boolean) => {
    if (!spec.startsWith('.')) return;
    out.push({ from: file, target: resolve(dirname(file), spec).replace(/\.js$/, '.ts'), names, typeOnly });
  };
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node) && ts.isStringLiteral(node.moduleSpecifier)) {
      const clause = node.importClause;
      const elements = clause?.namedBindings && ts.isNamedImports(clause.namedBindings) ? clause.namedBindings.elements : [];
      const typeOnly = clause?.isTypeOnly === true || (elements.length > 0 && elements.every((e) => e.isTypeOnly));
      add(node.moduleSpecifier.text, elements.map((e) => (e.propertyName ?? e.name).text), typeOnly);
    } else if (ts.isExportDeclaration(node) && node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier)) {
      const elements = node.exportClause && ts.isNamedExports(node.exportClause) ? node.exportClause.elements : [];
      add(node.moduleSpecifier.text, elements.map((e) => (e.propertyName ?? e.name).text), node.isTypeOnly);
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword && ts.isStringLiteral(node.arguments[0]!)) {
      // `const { a, b } = await import('…')`: the names destructured are the ones used.
      let up: ts.Node = node.parent;
      while (ts.isAwaitExpression(up) || ts.isParenthesizedExpression(up) || ts.isConditionalExpression(up) || ts.isArrayLiteralExpression(up) || ts.isCallExpression(up)) up = up.parent;
      const names: string[] = [];
      if (ts.isVariableDeclaration(up)) {
        const patterns = ts.isObjectBindingPattern(up.name) ? [up.name] : ts.isArrayBindingPattern(up.name) ? up.name.elements.flatMap((e) => (ts.isBindingElement(e) && ts.isObjectBindingPattern(e.name) ? [e.name] : [])) : [];
        for (const p of patterns) for (const e of p.elements) names.push((e.propertyName ?? e.name).getText());
      }
      add((node.arguments[0] as ts.StringLiteral).text, names, false);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return out;
}

const files = sourceFiles(SRC);
const imports = files.flatMap(importsOf);
const crossFolder = imports.filter((i) => folderOf(i.target) !== undefined && folderOf(i.target) !== folderOf(i.from));
const rel = (p: string) => relative(SRC, p);

/**
 * Lower ranks never import higher ones (DESIGN §2: cli → daemon → {container, snapshotter} →
 * {pull, rootfs, runtime} → {unpack, store, registry} → {archive, oci}; lazy sits above pull,
 * whose layer commit its background completion shares); a folder may import
 * any folder of a lower rank.
 */
const RANK: Record<string, number> = {
  util: 0,
  oci: 0,
  native: 0,
  archive: 1,
  registry: 2,
  store: 2,
  unpack: 2,
  pull: 3,
  rootfs: 3,
  runtime: 3,
  gc: 3,
  server: 3,
  rootless: 4,
  publish: 4,
  lazy: 4,
  container: 5,
  snapshotter: 5,
  daemon: 6,
  bench: 7,
  demo: 7,
  cli: 8,
};

/** The image server and publishing never import host-side parts (DESIGN §2). */
const SERVER_SIDE: Record<string, string[]> = {
  server: ['util', 'oci', 'archive', 'registry'],
  publish: ['util', 'oci', 'archive', 'registry', 'server'],
};

describe('src/ is cut into folders with one face each', () => {
  it('finds the folders and their imports (so the checks below cannot pass on nothing)', () => {
    expect(Object.keys(RANK).filter((f) => existsSync(join(SRC, f)))).toEqual(Object.keys(RANK));
    expect(readdirSync(SRC, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name).sort()).toEqual(Object.keys(RANK).sort());
    expect(crossFolder.length).toBeGreaterThan(150);
  });

  it('other folders import a folder through its index.ts', () => {
    const bypassing = crossFolder.filter((i) => !i.target.endsWith('/index.ts')).map((i) => `${rel(i.from)} → ${rel(i.target)}`);
    expect(bypassing).toEqual([]);
  });

  it('a folder that nobody imports has no index.ts, and every index.ts is imported', () => {
    const imported = new Set(crossFolder.map((i) => folderOf(i.target)));
    const withFace = Object.keys(RANK).filter((f) => existsSync(join(SRC, f, 'index.ts')));
    expect(withFace.filter((f) => !imported.has(f))).toEqual([]);
    expect([...imported].filter((f) => !withFace.includes(f!))).toEqual([]);
  });

  it('a face exports what other folders use, not its internals', () => {
    const used = new Map<string, Set<string>>();
    for (const i of crossFolder) {
      const f = folderOf(i.target)!;
      if (!used.has(f)) used.set(f, new Set());
      for (const n of i.names) used.get(f)!.add(n);
    }
    const unused: string[] = [];
    for (const f of Object.keys(RANK)) {
      const face = join(SRC, f, 'index.ts');
      // native/index.ts is the addon's typed wrapper itself, not a list of re-exports.
      if (!existsSync(face) || f === 'native') continue;
      const exported = ts.createSourceFile(face, readFileSync(face, 'utf8'), ts.ScriptTarget.ES2022, true);
      for (const s of exported.statements) {
        if (!ts.isExportDeclaration(s) || !s.exportClause || !ts.isNamedExports(s.exportClause)) continue;
        for (const e of s.exportClause.elements) if (!used.get(f)?.has(e.name.text)) unused.push(`${f}: ${e.name.text}`);
      }
      // Functions a face defines itself (lazy entry points) count too.
      const own = ts.createSourceFile(face, readFileSync(face, 'utf8'), ts.ScriptTarget.ES2022, true);
      for (const s of own.statements) {
        if (ts.isFunctionDeclaration(s) && s.name && s.modifiers?.some((m) => m.kind === ts.SyntaxKind.ExportKeyword) && !used.get(f)?.has(s.name.text)) unused.push(`${f}: ${s.name.text}`);
      }
    }
    expect(unused).toEqual([]);
  });

  it('dependencies point down', () => {
    const upward = crossFolder
      .filter((i) => RANK[folderOf(i.from)!]! <= RANK[folderOf(i.target)!]!)
      .map((i) => `${rel(i.from)} → ${rel(i.target)}`);
    expect(upward).toEqual([]);
  });

  it('the server and publishing import no host-side part', () => {
    const wrong = crossFolder.filter((i) => SERVER_SIDE[folderOf(i.from)!] && !SERVER_SIDE[folderOf(i.from)!]!.includes(folderOf(i.target)!)).map((i) => `${rel(i.from)} → ${rel(i.target)}`);
    expect(wrong).toEqual([]);
  });

  it('the store\'s tables are read and written inside src/store only', () => {
    const offenders = files
      .filter((f) => folderOf(f) !== 'store')
      .filter((f) => /\bdb\.prepare\(|\bstore\.db\b|\bdb\.(?:exec|transaction|pragma)\(|from 'better-sqlite3'/.test(readFileSync(f, 'utf8')))
      .map(rel);
    expect(offenders).toEqual([]);
  });

  it('nothing below src/cli prints to the terminal', () => {
    const printing = files.filter((f) => folderOf(f) !== 'cli').filter((f) => /process\.(stdout|stderr)\.write|console\.(log|info|warn|error)\(/.test(readFileSync(f, 'utf8'))).map(rel);
    expect(printing).toEqual([]);
  });
});
