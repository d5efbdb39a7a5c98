import { createDb, migrateToLatest, type DB } from '@mvp/db';
import { CompiledQuery, type Kysely } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mineAfterQuery } from './conversations.repo';

// SQLite: the snapshot's pages of my conversations (by id) read one range of the memberships'
// (user_id, conversation_id) index, neither sorting all of mine nor walking everyone's by the
// primary key (conversation_id, user_id). InnoDB's user_id index holds the primary key anyway.
describe("the snapshot's conversation pages", () => {
  let db: Kysely<DB>;
  beforeAll(async () => {
    db = createDb('sqlite::memory:');
    await migrateToLatest(db);
  });
  afterAll(() => db.destroy());

  it.each([
    ['the first page', null, /\(user_id=\?\)/],
    [
      'a later page',
      '0190d4a2-0000-7000-8000-000000000000',
      /\(user_id=\? AND conversation_id>\?\)/,
    ],
  ])('%s is one range of the (user_id, conversation_id) index', async (_, after, range) => {
    const { sql, parameters } = mineAfterQuery(db, 'me', after, 64).compile();
    const plan = await db.executeQuery<{ detail: string }>(
      CompiledQuery.raw(`explain query plan ${sql}`, [...parameters]),
    );
    const details = plan.rows.map((r) => r.detail).join('\n');
    expect(details).toMatch(
      new RegExp(
        `SEARCH m USING (COVERING )?INDEX conversation_members_user_conversation ${range.source}`,
      ),
    );
    expect(details).not.toMatch(/TEMP B-TREE|SCAN m\b/);
  });
});
