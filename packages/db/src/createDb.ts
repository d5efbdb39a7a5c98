import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import SQLite from 'better-sqlite3';
import { Kysely, MysqlDialect, SqliteDialect } from 'kysely';
import { LRUCache } from 'lru-cache';
import { createPool } from 'mysql2';
import type { DB } from './schema';
import { registerEmbedded } from './embedded';
import { startWalCheckpointer, type WalCheckpointer } from './walCheckpointer';

export type DbDialect = 'mysql' | 'sqlite';

export const DEFAULT_SQLITE_PATH = './data/mvp.db';

export type DbTarget = { dialect: 'mysql'; uri: string } | { dialect: 'sqlite'; path: string };

/** `mysql://…` is MySQL; `sqlite:<path>`, `sqlite::memory:` or nothing is the embedded default. */
export function parseDbUrl(url: string | undefined): DbTarget {
  if (!url) return { dialect: 'sqlite', path: DEFAULT_SQLITE_PATH };
  if (url.startsWith('mysql://')) return { dialect: 'mysql', uri: url };
  if (url.startsWith('sqlite:')) {
    const path = url.slice('sqlite:'.length).replace(/^\/\//, '');
    if (!path) throw new Error('DATABASE_URL: sqlite: needs a path or :memory:');
    return { dialect: 'sqlite', path };
  }
  throw new Error('DATABASE_URL: expected mysql://… or sqlite:<path>');
}

export function dialectOf(url: string | undefined): DbDialect {
  return parseDbUrl(url).dialect;
}

export type CreateDbOptions = { poolSize?: number };

export function createDb(url: string | undefined, options: CreateDbOptions = {}): Kysely<DB> {
  const target = parseDbUrl(url);
  if (target.dialect === 'mysql') {
    const pool = createPool({
      uri: target.uri,
      charset: 'utf8mb4',
      timezone: 'Z',
      connectionLimit: options.poolSize ?? 10,
      // Numbers past 2^53 arrive as strings instead of silently losing precision.
      supportBigNumbers: true,
      bigNumberStrings: false,
    });
    return new Kysely<DB>({ dialect: new MysqlDialect({ pool }) });
  }
  if (target.path !== ':memory:') mkdirSync(dirname(target.path), { recursive: true });
  const database = new SQLite(target.path);
  database.pragma('journal_mode = WAL');
  database.pragma('foreign_keys = ON');
  // Statement journals in memory, not in a temp file per statement: every multi-row write in a
  // transaction (a group send's stream rows, the member bumps) keeps one to undo itself alone,
  // and as files they cost a create, a write per page and an unlink each time, about a third of
  // a 100-member send's commit (bench/README.md, session 7). They hold the pages one statement
  // changes, so they stay small.
  database.pragma('temp_store = MEMORY');
  // Wait for a writer instead of failing at once when jobs and requests overlap.
  database.pragma('busy_timeout = 5000');
  const checkpointer = target.path === ':memory:' ? null : checkpointAside(database, target.path);
  const cached = withStatementCache(database, checkpointer);
  const db = new Kysely<DB>({ dialect: new SqliteDialect({ database: cached }) });
  registerEmbedded(db, database, (sql) => cached.prepare(sql));
  return db;
}

/** A file database's checkpoints move to a worker (see walCheckpointer); back in-line if it fails. */
function checkpointAside(database: SQLite.Database, path: string): WalCheckpointer {
  const checkpointer = startWalCheckpointer(path, (err) => {
    database.pragma('wal_autocheckpoint = 1000');
    process.emitWarning(`SQLite checkpoints are back on the serving thread: ${err.message}`);
  });
  database.pragma('wal_autocheckpoint = 0');
  return checkpointer;
}

/**
 * Kysely prepares every query afresh, and better-sqlite3 compiles the SQL on each `prepare`: a
 * tenth of a busy server's time. The same texts come back (one per call site, and per IN-list
 * length), so compiled statements are kept by text. Sharing one is safe because Kysely runs
 * each to completion (`all` or `run`) before the next; a streamed query (`iterate`), which would
 * hold its statement open, is not used here. Closing it stops the file's checkpointer first.
 */
function withStatementCache(
  database: SQLite.Database,
  checkpointer: WalCheckpointer | null,
  max = 500,
): { close(): void; prepare(sql: string): SQLite.Statement } {
  const statements = new LRUCache<string, SQLite.Statement>({ max });
  return {
    close: () => {
      checkpointer?.stop();
      database.close();
    },
    prepare(sql) {
      let statement = statements.get(sql);
      if (!statement) statements.set(sql, (statement = database.prepare(sql)));
      return statement;
    },
  };
}
