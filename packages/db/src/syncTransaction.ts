import type SQLite from 'better-sqlite3';
import type { CompiledQuery, Kysely, QueryResult } from 'kysely';
import type { Prepared } from './prepared';

/** Runs a prepared query on the embedded database, synchronously, as Kysely's driver would. */
export type RunSync<DB> = <Args extends unknown[], Row>(
  query: Prepared<DB, Args, Row>,
  ...args: Args
) => QueryResult<Row>;

type Embedded = {
  transaction: (work: (run: RunSync<unknown>) => unknown) => unknown;
  /** No transaction open on the connection (better-sqlite3 knows; Kysely's may be mid-way). */
  idle: () => boolean;
};

const embedded = new WeakMap<object, Embedded>();

/** Called by createDb: `db` runs on `database`, whose statements come from `prepare`. */
export function registerEmbedded<DB>(
  db: Kysely<DB>,
  database: SQLite.Database,
  prepare: (sql: string) => SQLite.Statement,
): void {
  const execute = <Row>({ sql, parameters }: CompiledQuery<Row>): QueryResult<Row> => {
    const statement = prepare(sql);
    if (statement.reader) return { rows: statement.all(parameters) as Row[] };
    const { changes, lastInsertRowid } = statement.run(parameters);
    return { rows: [], numAffectedRows: BigInt(changes), insertId: BigInt(lastInsertRowid) };
  };
  const run: RunSync<DB> = (query, ...args) => execute(query.compiled(db, ...args));
  const transaction = database.transaction((work: (run: RunSync<DB>) => unknown) => work(run));
  const begin = (work: (run: RunSync<DB>) => unknown) => {
    // Fail closed: inside a transaction left open, better-sqlite3 would nest as a savepoint and
    // this one's work would commit only with (or vanish with) the other.
    if (database.inTransaction) throw new Error('syncTransaction: a transaction is already open');
    return transaction(work);
  };
  embedded.set(db, { transaction: begin, idle: () => !database.inTransaction } as Embedded);
}

/**
 * `work` as one SQLite transaction in one synchronous call. A Kysely transaction runs each
 * statement as its own promise (the driver's connection mutex, the executor, a microtask hop or
 * more per statement), although better-sqlite3 runs each synchronously anyway, and other
 * requests' work runs between them while it holds the connection. For a message send's nine
 * statements that was about a third of their time back-to-back, 10–20 µs (bench/README.md,
 * session 13). Nothing can interleave with it: it runs in one synchronous call. When no
 * transaction is open on the connection it runs at once; otherwise (a Kysely transaction is
 * between statements) it waits for Kysely's one connection. Going around Kysely's connection
 * mutex when idle is safe because nothing runs on the connection meanwhile (better-sqlite3 runs
 * each Kysely statement synchronously too), and it spares a send the mutex's promises and
 * closures (about 4 KB of the 60 KB a relayed message allocated, bench/README session 20).
 * `work` must not await: it runs inside better-sqlite3's transaction, which commits when it
 * returns and rolls back if it throws. Only for a `db` createDb made on SQLite.
 */
export async function syncTransaction<DB, T>(
  db: Kysely<DB>,
  work: (run: RunSync<DB>) => T,
): Promise<T> {
  const handle = embedded.get(db);
  if (!handle) throw new Error('syncTransaction: not an embedded database made by createDb');
  if (handle.idle()) return handle.transaction(work as (run: RunSync<unknown>) => unknown) as T;
  return db
    .connection()
    .execute(async () => handle.transaction(work as (run: RunSync<unknown>) => unknown) as T);
}
