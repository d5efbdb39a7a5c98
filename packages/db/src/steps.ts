import type { Kysely, QueryResult, Transaction } from 'kysely';
import { embeddedOf, type RunSync } from './embedded';
import { isDeadlock } from './errors';
import type { Prepared } from './prepared';
import { syncTransaction } from './syncTransaction';

/** One statement that steps ask to run: a prepared query and its arguments. */
export type Step = { query: Prepared<never, never[], unknown>; args: readonly unknown[] };

/**
 * A transaction's work written once for both dialects, as a generator that yields each statement
 * (`yield* step(query, ...args)`) and is handed back its result. Driven synchronously on the
 * embedded database (one synchronous call, see `syncTransaction`) and statement by statement,
 * awaited, on MySQL. A statement that fails is thrown back in at its `yield*`: a `try` around it
 * catches it as it would around an `await`, and the steps may go on (a unique violation fails
 * only its statement). A failure that ended the transaction itself (MySQL rolls it all back on a
 * deadlock; SQLite ends it on some errors, such as a full disk) is thrown in too, but a step
 * yielded after it is refused with that error and never run: it would run outside any
 * transaction.
 */
export type Steps<T> = Generator<Step, T, QueryResult<unknown>>;

/** Runs `query` with `args` wherever the steps are driven; answers its result. */
export function* step<DB, Args extends unknown[], Row>(
  query: Prepared<DB, Args, Row>,
  ...args: Args
): Generator<Step, QueryResult<Row>, QueryResult<unknown>> {
  const result = yield { query: query as unknown as Step['query'], args };
  return result as QueryResult<Row>;
}

type Next<T> = IteratorResult<Step, T>;

/**
 * Drives `steps` with the embedded database's synchronous runner (inside `syncTransaction`).
 * `ended`: whether the transaction is over after a statement failed.
 */
export function runSteps<DB, T>(run: RunSync<DB>, steps: Steps<T>, ended: () => boolean): T {
  let lost: { error: unknown } | undefined;
  let next: Next<T> = steps.next();
  while (!next.done) {
    if (lost) throw lost.error;
    let result: QueryResult<unknown>;
    try {
      const query = next.value.query as unknown as Prepared<DB, unknown[], unknown>;
      result = run(query, ...next.value.args);
    } catch (err) {
      if (ended()) lost = { error: err };
      next = steps.throw(err);
      continue;
    }
    next = steps.next(result);
  }
  return next.value;
}

/**
 * Drives `steps` in a Kysely transaction, one awaited statement at a time. A deadlock is the
 * failure that ends a MySQL transaction (InnoDB rolls it back); on SQLite the same transaction
 * runs through `transactionOf`, which knows when its transaction ended.
 */
export async function awaitSteps<DB, T>(trx: Transaction<DB>, steps: Steps<T>): Promise<T> {
  let lost: { error: unknown } | undefined;
  let next: Next<T> = steps.next();
  while (!next.done) {
    if (lost) throw lost.error;
    let result: QueryResult<unknown>;
    try {
      const query = next.value.query as unknown as Prepared<DB, unknown[], unknown>;
      result = await query(trx, ...next.value.args);
    } catch (err) {
      if (isDeadlock(err)) lost = { error: err };
      next = steps.throw(err);
      continue;
    }
    next = steps.next(result);
  }
  return next.value;
}

/**
 * The steps `make` gives as one transaction: on the embedded database in one synchronous call
 * (a call's start was seven awaited statements in a Kysely transaction, each its own promises
 * and connection hand-offs, bench/README session 22), elsewhere as a Kysely transaction. `make`
 * is called once per run, so a caller that retries gets fresh steps.
 */
export function transactionOf<DB, T>(db: Kysely<DB>, make: () => Steps<T>): Promise<T> {
  const embedded = embeddedOf(db);
  // No transaction open any more after a failed statement: SQLite ended it.
  if (embedded) return syncTransaction(db, (run) => runSteps(run, make(), embedded.idle));
  return db.transaction().execute((trx) => awaitSteps(trx, make()));
}
