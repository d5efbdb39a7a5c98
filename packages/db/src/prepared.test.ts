import { sql, type Kysely } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDb } from './createDb';
import { holdTransaction } from './heldTransaction.testing';
import { prepared } from './prepared';

type T = { things: { id: string; owner: string; size: number } };

describe('prepared', () => {
  let db: Kysely<T>;
  beforeAll(async () => {
    db = createDb('sqlite::memory:') as unknown as Kysely<T>;
    await sql`create table things (id text primary key, owner text, size integer)`.execute(db);
    await db
      .insertInto('things')
      .values([
        { id: 'a', owner: 'ann', size: 1 },
        { id: 'b', owner: 'ann', size: 5 },
        { id: 'c', owner: 'ben', size: 5 },
      ])
      .execute();
  });
  afterAll(() => db.destroy());

  it('builds once and answers what the built query answers, for any arguments', async () => {
    let builds = 0;
    const build = (k: Kysely<T>, owner: string, min: number) => {
      builds++;
      // `owner` twice, and a constant (10) among the parameters.
      return k
        .selectFrom('things')
        .select('id')
        .where('owner', '=', owner)
        .where('size', '>=', min)
        .where((eb) => eb.or([eb('owner', '=', owner), eb('size', '>', 10)]))
        .orderBy('id');
    };
    const query = prepared(build);
    for (const [owner, min] of [
      ['ann', 0],
      ['ann', 2],
      ['ben', 0],
      ['nobody', 0],
    ] as const) {
      const direct = await build(db, owner, min).execute();
      expect((await query(db, owner, min)).rows).toEqual(direct);
    }
    expect(builds).toBe(4 + 1);
  });

  it('serves inside a transaction, on its connection, without building again', async () => {
    let builds = 0;
    const sizeOf = prepared((k: Kysely<T>, id: string) => {
      builds++;
      return k.selectFrom('things').select('size').where('id', '=', id);
    });
    expect((await sizeOf(db, 'a')).rows).toEqual([{ size: 1 }]);
    await db.transaction().execute(async (trx) => {
      await trx.updateTable('things').set({ size: 7 }).where('id', '=', 'a').execute();
      expect((await sizeOf(trx, 'a')).rows).toEqual([{ size: 7 }]);
    });
    expect(builds).toBe(1);
  });

  it('runs at once on the embedded database when no transaction is open, and after one that is', async () => {
    const sizeOf = prepared((k: Kysely<T>, id: string) =>
      k.selectFrom('things').select('size').where('id', '=', id),
    );
    const order: string[] = [];
    const direct = sizeOf(db, 'c').then(() => order.push('prepared'));
    void Promise.resolve().then(() => order.push('next microtask'));
    await direct;
    // Read in the call itself: its promise was settled before a microtask queued after it ran.
    expect(order).toEqual(['prepared', 'next microtask']);

    const held = await holdTransaction(db, (trx) =>
      trx.updateTable('things').set({ size: 100 }).where('id', '=', 'c').execute(),
    );
    const read = sizeOf(db, 'c');
    await new Promise((resolve) => setImmediate(resolve));
    await held.rollBack();
    // It waited for the connection: it did not read the other transaction's write.
    expect((await read).rows).toEqual([{ size: 5 }]);
  });

  it('refuses a query that does not take every argument as a parameter', async () => {
    const query = prepared((k: Kysely<T>, _unused: string) => k.selectFrom('things').selectAll());
    await expect(async () => query(db, 'x')).rejects.toThrow(/every argument/);
  });
});
