import { randomUUID } from 'node:crypto';
import { sql, type Kysely } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDb } from './createDb';
import { isUniqueViolation } from './errors';
import { prepared } from './prepared';
import { step, transactionOf, type Steps } from './steps';

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

const backends = [{ name: 'sqlite', url: 'sqlite::memory:', sync: true }];
if (process.env.MVP_TEST_DATABASE_URL)
  backends.push({ name: 'mysql', url: process.env.MVP_TEST_DATABASE_URL, sync: false });

describe.each(backends)('transactionOf on $name', ({ url, sync }) => {
  let db: Kysely<T>;
  // Ids of this run only: the MySQL test database is shared with other runs.
  const run = randomUUID();
  const id = (name: string) => `${run}-${name}`;
  const [a, b] = [id('a'), id('b')];

  beforeAll(async () => {
    db = createDb(url) as unknown as Kysely<T>;
    await sql`create table if not exists steps_test_counters (id varchar(64) primary key, value integer not null)`.execute(
      db,
    );
    await db.insertInto('steps_test_counters').values({ id: a, value: 0 }).execute();
  });
  afterAll(async () => {
    await db.deleteFrom('steps_test_counters').where('id', 'like', `${run}-%`).execute();
    await db.destroy();
  });

  const read = async (key: string) => (await valueOf(db, key)).rows[0]?.value;

  it('hands each statement its result, and commits', async () => {
    function* steps(): Steps<unknown> {
      const updated = yield* step(bump, a);
      const none = yield* step(bump, id('nobody'));
      const { rows } = yield* step(valueOf, a);
      return { updated: updated.numAffectedRows, none: none.numAffectedRows, value: rows[0] };
    }
    const answer = await transactionOf(db, steps);
    expect(answer).toEqual({ updated: 1n, none: 0n, value: { value: 1 } });
    expect(await read(a)).toBe(1);
  });

  it('throws a failing statement back in at its step: caught there, the rest goes on', async () => {
    let caught: unknown;
    function* steps(): Steps<void> {
      try {
        yield* step(add, a, 9); // the primary key refuses it
      } catch (err) {
        caught = err;
      }
      yield* step(bump, a);
    }
    await transactionOf(db, steps);
    expect(isUniqueViolation(caught)).toBe(true);
    expect(await read(a)).toBe(2);
  });

  it('rolls back every statement when the steps throw, and passes the error on', async () => {
    function* steps(): Steps<void> {
      yield* step(bump, a);
      yield* step(add, b, 1);
      throw new Error('changed my mind');
    }
    await expect(transactionOf(db, steps)).rejects.toThrow('changed my mind');
    expect(await read(a)).toBe(2);
    expect(await read(b)).toBeUndefined();
  });

  it('rolls back when a statement fails and the steps do not catch it', async () => {
    function* steps(): Steps<void> {
      yield* step(bump, a);
      yield* step(add, a, 9);
    }
    const failed = await transactionOf(db, steps).catch((err: unknown) => err);
    expect(isUniqueViolation(failed)).toBe(true);
    expect(await read(a)).toBe(2);
  });

  it(`runs ${sync ? 'in one synchronous call' : 'as awaited statements'} on this dialect`, async () => {
    let done = false;
    function* steps(): Steps<void> {
      yield* step(bump, a);
      yield* step(bump, a);
      done = true;
    }
    const ran = transactionOf(db, steps);
    // Nothing else can run between the statements of a synchronous transaction; on MySQL each
    // statement is a round trip, so the steps are still under way here.
    expect(done).toBe(sync);
    await ran;
    expect(done).toBe(true);
    expect(await read(a)).toBe(4);
  });
});
