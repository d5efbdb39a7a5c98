import { sql, type Kysely } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDb } from './createDb';
import { holdTransaction } from './heldTransaction.testing';
import { prepared } from './prepared';
import { syncTransaction } from './syncTransaction';

type T = { counters: { id: string; value: number } };

const bump = prepared((k: Kysely<T>, id: string) =>
  k
    .updateTable('counters')
    .set((eb) => ({ value: eb('value', '+', 1) }))
    .where('id', '=', id),
);
const valueOf = prepared((k: Kysely<T>, id: string) =>
  k.selectFrom('counters').select('value').where('id', '=', id),
);
const add = prepared((k: Kysely<T>, id: string, value: number) =>
  k.insertInto('counters').values({ id, value }),
);

describe('syncTransaction', () => {
  let db: Kysely<T>;
  beforeAll(async () => {
    db = createDb('sqlite::memory:') as unknown as Kysely<T>;
    await sql`create table counters (id text primary key, value integer not null)`.execute(db);
    await db.insertInto('counters').values({ id: 'a', value: 0 }).execute();
  });
  afterAll(() => db.destroy());

  const read = async (id: string) =>
    (await db.selectFrom('counters').select('value').where('id', '=', id).executeTakeFirst())
      ?.value;

  it('answers what its statements answer, as Kysely would, and commits', async () => {
    const answer = await syncTransaction(db, (run) => {
      const updated = run(bump, 'a');
      const none = run(bump, 'nobody');
      return { updated, none, value: run(valueOf, 'a').rows[0]?.value };
    });
    expect(answer.updated.numAffectedRows).toBe(1n);
    expect(answer.none.numAffectedRows).toBe(0n);
    expect(answer.value).toBe(1);
    expect(await read('a')).toBe(1);
  });

  it('rolls back everything when the work throws, and passes the error on', async () => {
    await expect(
      syncTransaction(db, (run) => {
        run(bump, 'a');
        run(add, 'b', 1);
        run(add, 'a', 9); // the primary key refuses it
      }),
    ).rejects.toMatchObject({ code: 'SQLITE_CONSTRAINT_PRIMARYKEY' });
    expect(await read('a')).toBe(1);
    expect(await read('b')).toBeUndefined();
  });

  it('runs at once when no transaction is open, without waiting for Kysely', async () => {
    let ran = false;
    const done = syncTransaction(db, (run) => {
      ran = true;
      return run(add, 'at-once', 7);
    });
    expect(ran).toBe(true); // within the call: no promise of Kysely's went first
    await done;
    expect(await read('at-once')).toBe(7);
  });

  it('waits for a Kysely transaction open on the connection, and does not join it', async () => {
    const held = await holdTransaction(db, (trx) =>
      trx.updateTable('counters').set({ value: 100 }).where('id', '=', 'a').execute(),
    );
    const order: string[] = [];
    const mine = syncTransaction(db, (run) => {
      order.push('sync');
      return run(valueOf, 'a').rows[0]?.value;
    });
    // Let the sync transaction try to start while the other one is open.
    await new Promise((resolve) => setImmediate(resolve));
    order.push('release');
    await held.rollBack();
    // It ran after the rollback, so it read neither the other's write nor wrote into it.
    expect(await mine).toBe(1);
    expect(order).toEqual(['release', 'sync']);
  });

  it('refuses to start inside a transaction left open on the connection', async () => {
    await sql`begin`.execute(db);
    try {
      await expect(syncTransaction(db, (run) => run(bump, 'a'))).rejects.toThrow(/already open/);
    } finally {
      await sql`rollback`.execute(db);
    }
    expect(await read('a')).toBe(1);
  });

  it('refuses a database createDb did not make (here one derived from it)', async () => {
    let ran = false;
    await expect(syncTransaction(db.withoutPlugins(), () => (ran = true))).rejects.toThrow(
      /not an embedded database/,
    );
    expect(ran).toBe(false);
  });
});
