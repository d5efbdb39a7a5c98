import { createDb, migrateToLatest, type DB } from '@mvp/db';
import { sql, type Kysely } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appendEvents } from './stream.repo';

// SQLite only: its statement variables (250 000 as better-sqlite3 builds it) are the limit a large
// append met; MariaDB's is its packet size (16 MiB by default), met near twice these rows.
describe('appendEvents', () => {
  let db: Kysely<DB>;
  const users = Array.from({ length: 3000 }, (_, i) => `user-${String(i).padStart(5, '0')}`);

  beforeAll(async () => {
    db = createDb('sqlite::memory:');
    await migrateToLatest(db);
    // Streams without accounts: this is about the statements, not the people.
    await sql`pragma foreign_keys = off`.execute(db);
    for (let i = 0; i < users.length; i += 500)
      await db
        .insertInto('user_streams')
        .values(users.slice(i, i + 500).map((user_id) => ({ user_id })))
        .execute();
  });
  afterAll(() => db.destroy());

  const event = { type: 'receipt', payload: { n: 1 } } as never;

  it('appends more rows and streams than one statement may carry, in order, each stream gapless', async () => {
    // 3 000 streams with 14 to 16 entries each: 45 000 rows, 270 000 values (a batch of
    // receipts over many big groups can be twice that).
    const entries = users.flatMap((userId, i) =>
      Array.from({ length: (i % 3) + 14 }, () => ({ userId, event })),
    );
    const last = await db.transaction().execute((trx) => appendEvents(trx, entries, 1));
    expect(last.size).toBe(users.length);
    expect(last.get(users[2]!)).toBe(16);
    const rows = await db
      .selectFrom('user_events')
      .select(['user_id', 'seq'])
      .orderBy('user_id')
      .orderBy('seq')
      .execute();
    expect(rows).toHaveLength(entries.length);
    const seqs = new Map<string, number[]>();
    for (const { user_id, seq } of rows)
      seqs.set(user_id, [...(seqs.get(user_id) ?? []), Number(seq)]);
    expect(seqs.get(users[0]!)).toEqual(Array.from({ length: 14 }, (_, i) => i + 1));
    expect(seqs.get(users[2]!)).toEqual(Array.from({ length: 16 }, (_, i) => i + 1));
    // The same again: each stream goes on from where it was.
    const again = await db.transaction().execute((trx) => appendEvents(trx, entries, 2));
    expect(again.get(users[2]!)).toBe(32);
  });
});
