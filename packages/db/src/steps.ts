import type { Kysely, QueryResult, Transaction } from 'kysely';
import { embeddedOf, type RunSync } from './embedded';
import { isUniqueViolation } from './errors';
import type { Prepared } from './prepared';
import { syncTransaction } from './syncTransaction';

/** One statement that steps ask to run: a prepared query and its arguments. */
export type Step = { query: Prepared<never, never[], unknown>; args: readonly unknown[] };

/**
 * A transaction's work written once for both dialects, as a generator that yields each statement
 * (`yield* step(query, ...args)`) and is handed back its result. Driven synchronously on the
 * embedded database (one synchronous call, see `syncTransaction`) and statement by statement,
 * awaited, on MySQL. A statement that fails is thrown back in at its `yield*`, where a `try`
 * catches it as it would around an `await`. Only a unique violation lets the steps go on: it
 * fails just its statement. Any other failure may have ended the transaction (MySQL rolls it all
 * back on a deadlock; SQLite ends it on a full disk), so after it a step yielded next is refused
 * with that error, never run outside the transaction, and steps that return instead fail with
 * it too, not commit as if nothing happened.
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

/** A failure the steps may not go on from (see Steps), kept to be thrown again. */
type Lost = { error: unknown } | undefined;
const lostBy = (error: unknown): Lost => (isUniqueViolation(error) ? undefined : { error });

/** Drives `steps` with the embedded database's synchronous runner (inside `syncTransaction`). */
export function runSteps<DB, T>(run: RunSync<DB>, steps: Steps<T>): T {
  let lost: Lost;
  let next: Next<T> = steps.next();
  while (!next.done) {
    if (lost) throw lost.error;
    let result: QueryResult<unknown>;
    try {
      const query = next.value.query as unknown as Prepared<DB, unknown[], unknown>;
      result = run(query, ...next.value.args);
    } catch (err) {
      lost ??= lostBy(err);
      next = steps.throw(err);
      continue;
    }
    next = steps.next(result);
  }
  if (lost) throw lost.error;
  return next.value;
}

/** Drives `steps` in a Kysely transaction, one awaited statement at a time. */
export async function awaitSteps<DB, T>(trx: Transaction<DB>, steps: Steps<T>): Promise<T> {
  let lost: Lost;
  let next: Next<T> = steps.next();
  while (!next.done) {
    if (lost) throw lost.error;
    let result: QueryResult<unknown>;
    try {
      const query = next.value.query as unknown as Prepared<DB, unknown[], unknown>;
      result = await query(trx, ...next.value.args);
    } catch (err) {
      lost ??= lostBy(err);
      next = steps.throw(err);
      continue;
    }
    next = steps.next(result);
  }
  if (lost) throw lost.error;
  return next.value;
}

/**
 * The steps `make` gives as one transaction: on the embedded database in one synchronous call
 * (a call's start was seven awaited statements in a Kysely transaction, each its own promises
 * and connection hand-offs, bench/README session 22), elsewhere as a Kysely transaction. `make`
 * is called once per run, so a caller that retries gets fresh steps.
 */
export function transactionOf<DB, T>(db: Kysely<DB>, make: () => Steps<T>): Promise<T> {
  if (embeddedOf(db)) return syncTransaction(db, (run) => runSteps(run, make()));
  return db.transaction().execute((trx) => awaitSteps(trx, make()));
}
