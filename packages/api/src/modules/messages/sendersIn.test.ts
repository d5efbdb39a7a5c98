import { createDb, migrateToLatest, type DB } from '@mvp/db';
import { CompiledQuery, sql, type Compilable, type Kysely } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sendersIn, sendersQuery, type ConversationRanges } from './messages.repo';

// SQLite only: the embedded backend is where the plan went wrong (its statements run on the
// server's one thread). Both backends run sendersIn through the server (conversationFeatures and
// queryPlans tests).
describe('sendersIn', () => {
  let db: Kysely<DB>;
  let primaryKey: string;

  beforeAll(async () => {
    db = createDb('sqlite::memory:');
    await migrateToLatest(db);
    // Rows without accounts: this is about the statements, not the people.
    await sql`pragma foreign_keys = off`.execute(db);
    // Two conversations of 30 messages: seqs 1-10 Ann's, 11-20 Ben's, 21-30 Cat's.
    for (const conversationId of ['c1', 'c2']) {
      await db
        .insertInto('conversation_members')
        .values(
          ['me', 'ann', 'ben', 'cat'].map((user_id) => ({
            conversation_id: conversationId,
            user_id,
            role: 'member',
            joined_at: 0,
          })),
        )
        .execute();
      await db
        .insertInto('messages')
        .values(
          Array.from({ length: 30 }, (_, i) => ({
            conversation_id: conversationId,
            seq: i + 1,
            id: `${conversationId}-${i + 1}`,
            sender_id: ['ann', 'ben', 'cat'][Math.floor(i / 10)]!,
            sender_device_id: 'device',
            client_message_id: `client-${i + 1}`,
            content_type: 'text/plain',
            created_at: i,
          })),
        )
        .execute();
    }
    const indexes = await sql<{
      name: string;
      origin: string;
    }>`select name, origin from pragma_index_list('messages')`.execute(db);
    primaryKey = indexes.rows.find((index) => index.origin === 'pk')!.name;
  });
  afterAll(() => db.destroy());

  const planOf = async (query: Compilable) => {
    const { sql: text, parameters } = query.compile();
    const plan = await db.executeQuery<{ detail: string }>(
      CompiledQuery.raw(`explain query plan ${text}`, [...parameters]),
    );
    return plan.rows.map((r) => r.detail).filter((detail) => / m /.test(detail));
  };

  it('reads a primary key range for two ranges of a conversation, not the whole conversation', async () => {
    const news: ConversationRanges[] = [
      {
        conversationId: 'c1',
        ranges: [
          { after: 12, upTo: 15 },
          { after: 5, upTo: 15 },
        ],
      },
    ];
    // With the ranges' OR alone: SEARCH m USING INDEX <client id index> (conversation_id=?).
    expect(await planOf(sendersQuery(db, 'me', news))).toEqual([
      `SEARCH m USING INDEX ${primaryKey} (conversation_id=? AND seq>? AND seq<?)`,
    ]);
    // Several conversations: one range each.
    news.push({
      conversationId: 'c2',
      ranges: [
        { after: 25, upTo: 28 },
        { after: 20, upTo: 30 },
      ],
    });
    const several = await planOf(sendersQuery(db, 'me', news));
    expect(several).toHaveLength(2);
    for (const detail of several)
      expect(detail).toBe(
        `SEARCH m USING INDEX ${primaryKey} (conversation_id=? AND seq>? AND seq<?)`,
      );
  });

  it('finds the senders inside the ranges only, not those between them', async () => {
    // Ann is me here. In c1 the ranges reach over Ann's seqs 1-5 and Cat's 25-30, Ben's lie
    // between them; in c2 they reach over Ann's seq 10 and Ben's 11-12.
    const found = await sendersIn(db, 'ann', [
      {
        conversationId: 'c1',
        ranges: [
          { after: 0, upTo: 5 },
          { after: 24, upTo: 30 },
        ],
      },
      {
        conversationId: 'c2',
        ranges: [
          { after: 9, upTo: 10 },
          { after: 10, upTo: 12 },
        ],
      },
      { conversationId: 'nowhere', ranges: [] },
    ]);
    expect(Object.fromEntries([...found].map(([id, senders]) => [id, senders.sort()]))).toEqual({
      c1: ['cat'],
      c2: ['ben'],
    });
  });
});
