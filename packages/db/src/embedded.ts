import type SQLite from 'better-sqlite3';
import type { CompiledQuery, Kysely, QueryResult } from 'kysely';
import type { Prepared } from './prepared';

/**
 * A prepared query compiled for one dialect: its SQL and parameters, and for each parameter the
 * index of the argument that goes there (-1: the constant in `query.parameters`).
 */
export type PreparedTemplate<Row> = { query: CompiledQuery<Row>; slots: readonly number[] };

/** The parameters of one run: the template's, with the arguments where their markers landed. */
export function parametersOf(
  { query, slots }: PreparedTemplate<unknown>,
  args: readonly unknown[],
): unknown[] {
  const parameters = new Array<unknown>(slots.length);
  for (let i = 0; i < slots.length; i++) {
    const slot = slots[i]!;
    parameters[i] = slot >= 0 ? args[slot] : query.parameters[i];
  }
  return parameters;
}

/** Runs a prepared query on the embedded database, synchronously, as Kysely's driver would. */
export type RunSync<DB> = <Args extends unknown[], Row>(
  query: Prepared<DB, Args, Row>,
  ...args: Args
) => QueryResult<Row>;

export type Embedded = {
  run: RunSync<unknown>;
  transaction: (work: (run: RunSync<unknown>) => unknown) => unknown;
  /** No transaction open on the connection (better-sqlite3 knows; Kysely's may be mid-way). */
  idle: () => boolean;
};

const embedded = new WeakMap<object, Embedded>();
const NO_ROWS: readonly never[] = Object.freeze([]);

/** The embedded database `db` runs on, if createDb made it on SQLite (not for a transaction). */
export function embeddedOf(db: object): Embedded | undefined {
  return embedded.get(db);
}

/** Called by createDb: `db` runs on `database`, whose statements come from `prepare`. */
export function registerEmbedded<DB>(
  db: Kysely<DB>,
  database: SQLite.Database,
  prepare: (sql: string) => SQLite.Statement,
): void {
  // Each template's statement, kept with it: a run spares the statement cache's lookup by SQL
  // text (hashing it) and builds only the parameter array (a relayed message's allocations,
  // bench/README session 21). `prepare` still shares statements with Kysely's own queries.
  const statements = new WeakMap<PreparedTemplate<unknown>, SQLite.Statement>();
  const run: RunSync<DB> = (query, ...args) => {
    const template = query.template(db, args.length) as PreparedTemplate<unknown>;
    let statement = statements.get(template);
    if (!statement) statements.set(template, (statement = prepare(template.query.sql)));
    const parameters = parametersOf(template, args);
    if (statement.reader) return { rows: statement.all(parameters) as never[] };
    // No insertId: nothing run here reads it.
    return { rows: NO_ROWS as never[], numAffectedRows: BigInt(statement.run(parameters).changes) };
  };
  const transaction = database.transaction((work: (run: RunSync<DB>) => unknown) => work(run));
  const begin = (work: (run: RunSync<DB>) => unknown) => {
    // Fail closed: inside a transaction left open, better-sqlite3 would nest as a savepoint and
    // this one's work would commit only with (or vanish with) the other.
    if (database.inTransaction) throw new Error('syncTransaction: a transaction is already open');
    return transaction(work);
  };
  embedded.set(db, { run, transaction: begin, idle: () => !database.inTransaction } as Embedded);
}
