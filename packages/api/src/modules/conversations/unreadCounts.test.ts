import { createDb, migrateToLatest, type DB } from '@mvp/db';
import { CompiledQuery, sql, type Kysely } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listMine, UNREAD_SEQS_LISTED, unreadCounts, unreadQuery } from './conversations.repo';

// SQLite only: the plan that matters here is MariaDB's (asserted in apps/server's queryPlans test),
// this keeps the embedded one on the primary key too, and counts past one read's worth of
// conversations. Both backends count through the server in unreadCounts and queryPlans tests.
describe('unreadCounts', () => {
  let db: Kysely<DB>;
  /** Conversations `c0000`…: more than one read counts (500), so their terms go in chunks. */
  const CONVERSATIONS = 1200;
  const idOf = (i: number) => `c${String(i).padStart(4, '0')}`;
  /** My positions in conversation i, each of 3 messages (seqs 1 and 3 from others, 2 mine). */
  const readOf = (i: number) => i % 4;
  const joinedOf = (i: number) => (i % 5 === 0 ? 2 : 0);
  /** One message from others past the listed bound: a count only. */
  const BIG = 'big';
  const BIG_LENGTH = UNREAD_SEQS_LISTED + 2;
  const conversation = (id: string, lastSeq: number) => ({
    id,
    kind: 'group',
    last_seq: lastSeq,
    created_by: 'other',
    created_at: 0,
    updated_at: 0,
  });
  const message = (conversationId: string, seq: number) => ({
    conversation_id: conversationId,
    seq,
    id: `${conversationId}-${seq}`,
    sender_id: seq === 2 ? 'me' : 'other',
    sender_device_id: 'device',
    client_message_id: `client-${seq}`,
    content_type: 'text/plain',
    created_at: seq,
  });

  beforeAll(async () => {
    db = createDb('sqlite::memory:');
    await migrateToLatest(db);
    // Rows without accounts: this is about the statements, not the people.
    await sql`pragma foreign_keys = off`.execute(db);
    for (let from = 0; from < CONVERSATIONS; from += 100) {
      const chunk = Array.from({ length: Math.min(100, CONVERSATIONS - from) }, (_, j) => from + j);
      await db
        .insertInto('conversations')
        .values(chunk.map((i) => conversation(idOf(i), 3)))
        .execute();
      await db
        .insertInto('conversation_members')
        .values(
          chunk.map((i) => ({
            conversation_id: idOf(i),
            user_id: 'me',
            role: 'member',
            joined_at: 0,
            joined_seq: joinedOf(i),
            read_seq: readOf(i),
          })),
        )
        .execute();
      await db
        .insertInto('messages')
        .values(chunk.flatMap((i) => [1, 2, 3].map((seq) => message(idOf(i), seq))))
        .execute();
    }
    await db.insertInto('conversations').values(conversation(BIG, BIG_LENGTH)).execute();
    await db
      .insertInto('conversation_members')
      .values({ conversation_id: BIG, user_id: 'me', role: 'member', joined_at: 0 })
      .execute();
    await db
      .insertInto('messages')
      .values(Array.from({ length: BIG_LENGTH }, (_, i) => message(BIG, i + 1)))
      .execute();
    // Deleted for everyone in c0001, for me in c0002: neither counts.
    await db
      .updateTable('messages')
      .set({ deleted_at: 1 })
      .where('conversation_id', '=', idOf(1))
      .where('seq', '=', 3)
      .execute();
    await db
      .insertInto('message_hidden')
      .values({ user_id: 'me', conversation_id: idOf(2), seq: 3 })
      .execute();
  });
  afterAll(() => db.destroy());

  it('reads a primary key range per conversation', async () => {
    const from = [0, 1, 2].map((i) => ({ conversationId: idOf(i), after: i, upTo: 3 }));
    const { sql: text, parameters } = unreadQuery(db, 'me', from)
      .select(['msg.conversation_id', 'msg.seq'])
      .compile();
    const plan = await db.executeQuery<{ detail: string }>(
      CompiledQuery.raw(`explain query plan ${text}`, [...parameters]),
    );
    const reads = plan.rows.map((r) => r.detail).filter((detail) => / msg /.test(detail));
    expect(reads).toHaveLength(3);
    for (const detail of reads)
      expect(detail).toMatch(
        /^SEARCH msg USING INDEX \S+ \(conversation_id=\? AND seq>\? AND seq<\?\)$/,
      );
  });

  it('counts and lists exactly, in every chunk of conversations', async () => {
    const counts = await unreadCounts(db, 'me', await listMine(db, 'me'));
    const expected = new Map<string, { count: number; seqs: number[] | null }>();
    for (let i = 0; i < CONVERSATIONS; i++) {
      const after = Math.max(readOf(i), joinedOf(i));
      const gone = i === 1 || i === 2 ? [3] : [];
      const seqs = [1, 3].filter((seq) => seq > after && !gone.includes(seq));
      if (seqs.length > 0) expected.set(idOf(i), { count: seqs.length, seqs });
    }
    expected.set(BIG, { count: BIG_LENGTH - 1, seqs: null });
    expect(counts).toEqual(expected);
  });

  it('counts up to the last seq read with the memberships: a message sent since is not in it', async () => {
    // c0004 (read and joined at 0) as read before its third message: 1 is unread (2 is mine).
    const [row] = (await listMine(db, 'me')).filter((r) => r.id === idOf(4));
    const counts = await unreadCounts(db, 'me', [{ ...row!, last_seq: 2 }]);
    expect(counts).toEqual(new Map([[idOf(4), { count: 1, seqs: [1] }]]));
  });
});
