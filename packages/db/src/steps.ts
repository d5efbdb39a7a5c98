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

/**
 * What both drivers share: hands the steps each statement's result or failure, and keeps the
 * rule of `Steps` (after a failure other than a unique violation, no statement runs any more and
 * the steps fail with it, whatever they do).
 */
class Driver<T> {
  private lost: { error: unknown } | undefined;
  private next: IteratorResult<Step, T>;

  constructor(private readonly steps: Steps<T>) {
    this.next = steps.next();
  }

  /** The next statement to run; undefined once the steps are done. */
  pending(): Step | undefined {
    if (this.next.done) return undefined;
    if (this.lost) throw this.lost.error;
    return this.next.value;
  }

  ran(result: QueryResult<unknown>): void {
    this.next = this.steps.next(result);
  }

  failed(error: unknown): void {
    if (!this.lost && !isUniqueViolation(error)) this.lost = { error };
    this.next = this.steps.throw(error);
  }

  result(): T {
    if (this.lost) throw this.lost.error;
    return (this.next as IteratorReturnResult<T>).value;
  }
}

/** Drives `steps` with the embedded database's synchronous runner (inside `syncTransaction`). */
export function runSteps<DB, T>(run: RunSync<DB>, steps: Steps<T>): T {
  const driver = new Driver(steps);
  for (let next = driver.pending(); next; next = driver.pending()) {
    let result: QueryResult<unknown>;
    try {
      result = run(next.query as unknown as Prepared<DB, unknown[], unknown>, ...next.args);
    } catch (err) {
      driver.failed(err);
      continue;
    }
    driver.ran(result);
  }
  return driver.result();
}

/** Drives `steps` in a Kysely transaction, one awaited statement at a time. */
export async function awaitSteps<DB, T>(trx: Transaction<DB>, steps: Steps<T>): Promise<T> {
  const driver = new Driver(steps);
  for (let next = driver.pending(); next; next = driver.pending()) {
    let result: QueryResult<unknown>;
    try {
      const query = next.query as unknown as Prepared<DB, unknown[], unknown>;
      result = await query(trx, ...next.args);
    } catch (err) {
      driver.failed(err);
      continue;
    }
    driver.ran(result);
  }
  return driver.result();
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
