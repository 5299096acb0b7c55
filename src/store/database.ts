import type BetterSqlite3 from 'better-sqlite3';
import { createRequire } from 'node:module';
import { HostpullError, errnoCode } from '../errors.js';
import { MIGRATIONS } from './migrations.js';

export type Db = BetterSqlite3.Database;

/**
 * better-sqlite3, loaded with `require` and given its addon directly. Imported as an ES module,
 * its CommonJS files go through the ESM loader's export scan, and its first open finds the addon
 * with the `bindings` package, which probes a dozen paths. That was 9-16 ms of every command
 * that opens the store; required, with the addon at the path its build writes, 4.5 ms
 * (`node_modules/better-sqlite3` alone, 5 runs each). An addon elsewhere (another build type)
 * is left to `bindings`.
 */
function sqlite(): { Database: typeof BetterSqlite3; nativeBinding: string | undefined } {
  const require = createRequire(import.meta.url);
  const Database = require('better-sqlite3') as typeof BetterSqlite3;
  let nativeBinding: string | undefined;
  try {
    nativeBinding = require.resolve('better-sqlite3/build/Release/better_sqlite3.node');
  } catch {
    nativeBinding = undefined;
  }
  return { Database, nativeBinding };
}

/** How long a statement waits for another process's write lock before SQLITE_BUSY. */
const BUSY_TIMEOUT_MS = 10_000;

/**
 * Opens the store database the way pnpm's store index does: busy_timeout first (so even the
 * journal_mode switch waits for a concurrent opener instead of failing), then WAL and
 * synchronous=NORMAL (durable at checkpoints; a blob row is only written after its file was
 * fsynced, so losing the last transactions on power loss only loses rows, never verifies a bad
 * file — except a layer blob kept only until its layer is committed, see protocol.ts), then
 * migrations under an exclusive transaction.
 */
export function openDatabase(path: string): Db {
  let db: Db;
  const { Database, nativeBinding } = sqlite();
  try {
    db = new Database(path, nativeBinding ? { nativeBinding } : {});
  } catch (err) {
    throw new HostpullError('STORE_OPEN_FAILED', `cannot open the store database ${path}: ${(err as Error).message}`, {
      cause: err,
      hint: errnoCode(err) === 'SQLITE_CANTOPEN' ? 'check that --root points at a writable directory' : undefined,
    });
  }
  db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
  withBusyRetry(() => db.pragma('journal_mode = WAL'), db);
  db.pragma('synchronous = NORMAL');
  db.pragma('foreign_keys = ON');
  migrate(db, path);
  return db;
}

function migrate(db: Db, path: string): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > MIGRATIONS.length) {
    throw new HostpullError('STORE_TOO_NEW', `store ${path} has schema version ${current}; this hostpull knows up to ${MIGRATIONS.length}`, {
      hint: 'upgrade hostpull, or use another --root',
    });
  }
  if (current === MIGRATIONS.length) return;
  immediate(db, () => {
    // Re-read inside the write lock: another process may have migrated meanwhile.
    const version = db.pragma('user_version', { simple: true }) as number;
    for (let v = version; v < MIGRATIONS.length; v++) {
      db.exec(MIGRATIONS[v]!);
      db.pragma(`user_version = ${v + 1}`);
    }
  });
}

/**
 * Retries a statement that failed with SQLITE_BUSY despite busy_timeout (WAL upgrade races), and
 * turns SQLITE_FULL into an error that names the database (`db`, when given); hintFor adds what to do.
 */
export function withBusyRetry<T>(fn: () => T, db?: Db): T {
  const attempts = 20;
  for (let i = 0; ; i++) {
    try {
      return fn();
    } catch (err) {
      const code = errnoCode(err);
      if ((code === 'SQLITE_BUSY' || code === 'SQLITE_BUSY_SNAPSHOT' || code === 'SQLITE_LOCKED') && i < attempts) {
        // Synchronous sleep: better-sqlite3 is synchronous and this path is rare.
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5 + i * 10);
        continue;
      }
      if (code === 'SQLITE_FULL') {
        const where = db ? ` ${db.name}` : '';
        throw new HostpullError('STORE_FULL', `the store database${where} cannot grow: no space left on the device`, { cause: err });
      }
      throw err;
    }
  }
}

/**
 * Runs fn in BEGIN IMMEDIATE (takes the write lock up front, so two writers never deadlock on a
 * read→write upgrade), commits, and rolls back in finally if anything threw.
 */
export function immediate<T>(db: Db, fn: () => T): T {
  return withBusyRetry(() => {
    db.exec('BEGIN IMMEDIATE');
    let committed = false;
    try {
      const result = fn();
      db.exec('COMMIT');
      committed = true;
      return result;
    } finally {
      if (!committed && db.inTransaction) db.exec('ROLLBACK');
    }
  }, db);
}
