import { randomUUID } from 'node:crypto';
import { sql, type Kysely, type Transaction } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDb } from './createDb';
import type { RunSync } from './embedded';
import { isUniqueViolation } from './errors';
import { prepared, type Prepared } from './prepared';
import { awaitSteps, runSteps, step, transactionOf, type Steps } from './steps';

type T = { steps_test_counters: { id: string; value: number } };

const bump = prepared((k: Kysely<T>, id: string) =>
  k
    .updateTable('steps_test_counters')
    .set((eb) => ({ value: eb('value', '+', 1) }))
    .where('id', '=', id),
);
const valueOf = prepared((k: Kysely<T>, id: string) =>
  k.selectFrom('steps_test_counters').select('value').where('id', '=', id),
);
const add = prepared((k: Kysely<T>, id: string, value: number) =>
  k.insertInto('steps_test_counters').values({ id, value }),
);

type Transact = <R>(db: Kysely<T>, make: () => Steps<R>) => Promise<R>;
const backends: { name: string; url: string; transact: Transact; sync: boolean }[] = [
  { name: 'sqlite', url: 'sqlite::memory:', transact: transactionOf, sync: true },
  {
    // The Kysely driver on SQLite too, so it runs without a MySQL server as well.
    name: 'sqlite, awaited in a Kysely transaction',
    url: 'sqlite::memory:',
    transact: (db, make) => db.transaction().execute((trx) => awaitSteps(trx, make())),
    sync: false,
  },
];
if (process.env.MVP_TEST_DATABASE_URL)
  backends.push({
    name: 'mysql',
    url: process.env.MVP_TEST_DATABASE_URL,
    transact: transactionOf,
    sync: false,
  });

describe.each(backends)('steps on $name', ({ url, transact, sync }) => {
  let db: Kysely<T>;
  // Ids of this run only: the MySQL test database is shared with other runs.
  const run = randomUUID();
  let counter = 0;
  /** A row of its own for each test, at 0. */
  const fresh = async () => {
    const id = `${run}-${++counter}`;
    await db.insertInto('steps_test_counters').values({ id, value: 0 }).execute();
    return id;
  };

  beforeAll(async () => {
    db = createDb(url) as unknown as Kysely<T>;
    await sql`create table if not exists steps_test_counters (id varchar(64) primary key, value integer not null)`.execute(
      db,
    );
  });
  afterAll(async () => {
    await db.deleteFrom('steps_test_counters').where('id', 'like', `${run}-%`).execute();
    await db.destroy();
  });

  const read = async (key: string) => (await valueOf(db, key)).rows[0]?.value;

  it('hands each statement its result, and commits', async () => {
    const a = await fresh();
    function* steps(): Steps<unknown> {
      const updated = yield* step(bump, a);
      const none = yield* step(bump, `${run}-nobody`);
      const { rows } = yield* step(valueOf, a);
      return { updated: updated.numAffectedRows, none: none.numAffectedRows, value: rows[0] };
    }
    expect(await transact(db, steps)).toEqual({ updated: 1n, none: 0n, value: { value: 1 } });
    expect(await read(a)).toBe(1);
  });

  it('throws a failing statement back in at its step: caught there, the rest goes on', async () => {
    const a = await fresh();
    let caught: unknown;
    function* steps(): Steps<void> {
      try {
        yield* step(add, a, 9); // the primary key refuses it
      } catch (err) {
        caught = err;
      }
      yield* step(bump, a);
    }
    await transact(db, steps);
    expect(isUniqueViolation(caught)).toBe(true);
    expect(await read(a)).toBe(1);
  });

  it('rolls back every statement when the steps throw, and passes the error on', async () => {
    const [a, b] = [await fresh(), `${run}-never`];
    function* steps(): Steps<void> {
      yield* step(bump, a);
      yield* step(add, b, 1);
      throw new Error('changed my mind');
    }
    await expect(transact(db, steps)).rejects.toThrow('changed my mind');
    expect(await read(a)).toBe(0);
    expect(await read(b)).toBeUndefined();
  });

  it('rolls back when a statement fails and the steps do not catch it', async () => {
    const a = await fresh();
    function* steps(): Steps<void> {
      yield* step(bump, a);
      yield* step(add, a, 9);
    }
    expect(isUniqueViolation(await transact(db, steps).catch((err: unknown) => err))).toBe(true);
    expect(await read(a)).toBe(0);
  });

  it(`runs ${sync ? 'in one synchronous call' : 'as awaited statements'}`, async () => {
    const a = await fresh();
    let done = false;
    function* steps(): Steps<void> {
      yield* step(bump, a);
      yield* step(bump, a);
      done = true;
    }
    const ran = transact(db, steps);
    // Nothing else can run between the statements of a synchronous transaction; awaited, each
    // statement is a promise, so the steps are still under way here.
    expect(done).toBe(sync);
    await ran;
    expect(done).toBe(true);
    expect(await read(a)).toBe(2);
  });
});

describe('a failure the steps may not go on from', () => {
  const fullDisk = Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' });
  const taken = Object.assign(new Error('UNIQUE constraint failed'), {
    code: 'SQLITE_CONSTRAINT_PRIMARYKEY',
  });
  const deadlock = Object.assign(new Error('Deadlock found'), { errno: 1213 });
  /** Steps that catch the failure of their first statement and try one more. */
  function* tryOnce(ran: string[]): Steps<string> {
    try {
      yield* step(bump as never, 'first');
    } catch {
      ran.push('caught');
    }
    yield* step(bump as never, 'second');
    return 'finished';
  }
  /** A synchronous runner whose first statement fails with `error`. */
  const failingFirst = (error: Error, ran: string[]) =>
    ((_query: unknown, id: string) => {
      ran.push(id);
      if (id === 'first') throw error;
      return { rows: [] };
    }) as unknown as RunSync<unknown>;

  it('any failure but a unique violation: the steps hear of it, the next step is refused', () => {
    const ran: string[] = [];
    expect(() => runSteps(failingFirst(fullDisk, ran), tryOnce(ran))).toThrow(fullDisk);
    expect(ran).toEqual(['first', 'caught']);
  });

  it('a unique violation fails only its statement: the steps go on', () => {
    const ran: string[] = [];
    expect(runSteps(failingFirst(taken, ran), tryOnce(ran))).toBe('finished');
    expect(ran).toEqual(['first', 'caught', 'second']);
  });

  it('steps that catch such a failure and return fail with it, never as a success', () => {
    function* swallow(): Steps<string> {
      try {
        yield* step(bump as never, 'first');
      } catch {
        return 'fine';
      }
      return 'unreached';
    }
    expect(() => runSteps(failingFirst(fullDisk, []), swallow())).toThrow(fullDisk);
  });

  it('awaited: after a deadlock (MySQL rolled it all back) not even a finally may write', async () => {
    const ran: string[] = [];
    const failing = (async (_trx: unknown, id: string) => {
      ran.push(id);
      throw deadlock;
    }) as unknown as Prepared<never, never[], unknown>;
    function* steps(): Steps<void> {
      try {
        yield* step(failing, 'first' as never);
      } finally {
        yield* step(failing, 'second' as never);
      }
    }
    await expect(awaitSteps({} as Transaction<T>, steps())).rejects.toBe(deadlock);
    expect(ran).toEqual(['first']);
    // Nor may they catch it and return: Kysely would commit what MySQL rolled back.
    function* swallow(): Steps<string> {
      try {
        yield* step(failing, 'again' as never);
      } catch {
        return 'fine';
      }
      return 'unreached';
    }
    await expect(awaitSteps({} as Transaction<T>, swallow())).rejects.toBe(deadlock);
  });

  it('a full disk on the embedded database: nothing of the transaction stays, its error comes out', async () => {
    const db = createDb('sqlite::memory:') as unknown as Kysely<T>;
    try {
      await sql`create table steps_test_counters (id text primary key, value integer not null)`.execute(
        db,
      );
      await db.insertInto('steps_test_counters').values({ id: 'a', value: 0 }).execute();
      const { rows } = await sql<{ page_count: number }>`pragma page_count`.execute(db);
      await sql.raw(`pragma max_page_count = ${rows[0]!.page_count + 2}`).execute(db);
      const huge = 'x'.repeat(200_000);
      let caught: unknown;
      function* steps(): Steps<string> {
        yield* step(bump, 'a');
        try {
          yield* step(add, huge, 1); // more pages than the database may have
        } catch (err) {
          caught = err;
        }
        yield* step(bump, 'a');
        return 'done';
      }
      const failed = await transactionOf(db, steps).catch((err: unknown) => err);
      expect((caught as { code?: string }).code).toBe('SQLITE_FULL');
      expect(failed).toBe(caught);
      expect((await valueOf(db, 'a')).rows[0]?.value).toBe(0);
    } finally {
      await db.destroy();
    }
  });
});
