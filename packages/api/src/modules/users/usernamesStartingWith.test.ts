import { createDb, migrateToLatest, type DB } from '@mvp/db';
import { CompiledQuery, sql, type Kysely } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { usernamesStartingWith } from './users.service';

// SQLite only: the embedded backend is where the plan matters (its statements run on the server's
// one thread), and where the case-insensitive LIKE cannot use the username index by itself. Both
// backends search through the server in apps/server/test (people.test.ts, lookupIndexes.test.ts).
describe('usernamesStartingWith', () => {
  let db: Kysely<DB>;
  beforeAll(async () => {
    db = createDb('sqlite::memory:');
    await migrateToLatest(db);
    await sql`pragma foreign_keys = off`.execute(db);
    // Neighbours on both sides of the prefix 'ab', in byte order and in other orders.
    const names = ['aa', 'aaz', 'ab', 'ab_', 'ab0', 'ab9', 'aba', 'abz', 'abzz', 'ac', 'b', '_ab'];
    await db
      .insertInto('users')
      .values(
        names.map((username, i) => ({
          id: `user-${i}`,
          unique_id: String(10_000_000 + i),
          username,
          display_name_ciphertext: 'x',
          password_hash: 'x',
          require_otp_login: 0,
          phone_ciphertext: null,
          phone_index: null,
          bio: null,
          avatar_key: null,
          last_seen_at: null,
          created_at: 0,
          updated_at: 0,
          last_active_at: 0,
        })),
      )
      .execute();
  });
  afterAll(() => db.destroy());

  const namesOf = async (prefix: string, cursor?: string, limit = 50) =>
    (await usernamesStartingWith(db, 'viewer', prefix, cursor, limit).execute()).map(
      (r) => r.username,
    );

  it('searches the username index by range instead of reading every username', async () => {
    for (const cursor of [undefined, 'ab0']) {
      const { sql: text, parameters } = usernamesStartingWith(
        db,
        'viewer',
        'ab',
        cursor,
        21,
      ).compile();
      const plan = (
        await db.executeQuery<{ detail: string }>(
          CompiledQuery.raw(`explain query plan ${text}`, [...parameters]),
        )
      ).rows.map((r) => r.detail);
      expect(plan[0]).toMatch(/^SEARCH users USING INDEX \w+ \(username>\? AND username<\?\)$/);
      expect(plan.join('\n')).not.toMatch(/SCAN users|TEMP B-TREE/);
    }
  });

  it('finds exactly the usernames that start with the prefix, the prefix itself included', async () => {
    expect(await namesOf('ab')).toEqual(['ab', 'ab0', 'ab9', 'ab_', 'aba', 'abz', 'abzz']);
    expect(await namesOf('abz')).toEqual(['abz', 'abzz']);
    expect(await namesOf('ab_')).toEqual(['ab_']);
    expect(await namesOf('ab9')).toEqual(['ab9']);
    expect(await namesOf('aa')).toEqual(['aa', 'aaz']);
    expect(await namesOf('zz')).toEqual([]);
    expect(await namesOf('ab', 'ab9', 2)).toEqual(['ab_', 'aba']);
  });
});
