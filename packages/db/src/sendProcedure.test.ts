import { randomUUID } from 'node:crypto';
import { sql, type Kysely } from 'kysely';
import { describe, expect, it } from 'vitest';
import { createDb } from './createDb';
import { migrateToLatest } from './migrate';
import type { DB } from './schema';

// The send's stored procedure exists on MySQL only (SQLite runs the same transaction in
// process); the server's messaging tests cover it through the API, this checks what they cannot
// reach: the rows each member's membership gets, a conversation that vanished mid-send, and a
// send decided on a membership that changed before its write.
/** A row of the procedure's answer: the message's seq, a member and their new stream seq. */
type StreamSeq = { seq: number; user_id: string; last_seq: number };

if (process.env.MVP_TEST_DATABASE_URL) {
  const url = process.env.MVP_TEST_DATABASE_URL;

  const call = (
    db: Kysely<DB>,
    conversationId: string,
    senderId: string,
    now: number,
    role = 'member',
  ) =>
    sql<StreamSeq[]>`CALL mvp_send_message(
      ${conversationId}, ${randomUUID()}, ${senderId}, ${randomUUID()}, ${randomUUID()},
      ${'text/plain'}, ${Buffer.from('opaque')}, ${null}, ${0}, ${now}, ${null}, ${role})`.execute(
      db,
    );

  describe('mvp_send_message (MySQL)', () => {
    it("appends to every member's stream and moves only the sender's read position; a vanished conversation or a changed membership writes nothing", async () => {
      const db = createDb(url);
      const [alice, bob] = [randomUUID(), randomUUID()].sort();
      const conversationId = randomUUID();
      const now = Date.now();
      try {
        await migrateToLatest(db);
        for (const id of [alice!, bob!]) {
          await db
            .insertInto('users')
            .values({
              id,
              unique_id: id.slice(0, 8),
              username: null,
              phone_ciphertext: null,
              phone_index: null,
              display_name_ciphertext: 'x',
              password_hash: 'x',
              require_otp_login: 0,
              created_at: now,
              updated_at: now,
              last_active_at: now,
              bio: null,
              avatar_key: null,
              last_seen_at: null,
            })
            .execute();
        }
        await db
          .insertInto('user_streams')
          .values([
            { user_id: alice!, last_seq: 5 },
            { user_id: bob!, last_seq: 0 },
          ])
          .execute();
        await db
          .insertInto('conversations')
          .values({
            id: conversationId,
            kind: 'direct',
            title: null,
            description: null,
            avatar_key: null,
            direct_key: `${alice}:${bob}`,
            last_seq: 3,
            created_by: alice!,
            created_at: now,
            updated_at: now,
          })
          .execute();
        await db
          .insertInto('conversation_members')
          .values(
            [alice!, bob!].map((user_id) => ({
              conversation_id: conversationId,
              user_id,
              role: 'member',
              joined_at: now,
              last_post_at: null,
            })),
          )
          .execute();

        const answer = await call(db, conversationId, alice!, now + 1);
        // A CALL answers its result set, then the procedure's own status.
        const streams = answer.rows[0]!;
        expect(
          streams
            .map((s) => ({ seq: Number(s.seq), user: s.user_id, last: Number(s.last_seq) }))
            .sort((a, b) => a.user.localeCompare(b.user)),
        ).toEqual([
          { seq: 4, user: alice, last: 6 },
          { seq: 4, user: bob, last: 1 },
        ]);
        const members = await db
          .selectFrom('conversation_members')
          .select(['user_id', 'delivered_seq', 'read_seq', 'last_post_at'])
          .where('conversation_id', '=', conversationId)
          .orderBy('user_id')
          .execute();
        expect(
          members.map((m) => [m.delivered_seq, m.read_seq, m.last_post_at].map(Number)),
        ).toEqual([
          [4, 4, now + 1],
          [0, 0, 0], // bob's row as it was (last_post_at null)
        ]);
        const events = await db
          .selectFrom('user_events')
          .select(['user_id', 'seq', 'payload'])
          .where('user_id', 'in', [alice!, bob!])
          .orderBy('user_id')
          .execute();
        expect(
          events.map((e) => [e.user_id, Number(e.seq), JSON.parse(e.payload) as unknown]),
        ).toEqual([
          [alice, 6, { conversationId, seq: 4 }],
          [bob, 1, { conversationId, seq: 4 }],
        ]);

        // No conversation row to bump: the seq is NULL, the message insert fails, all rolls back.
        await expect(call(db, randomUUID(), alice!, now + 2)).rejects.toThrow(
          "Column 'seq' cannot be null",
        );
        // Decided on a role the sender no longer has (or on a membership that is gone).
        await expect(call(db, conversationId, alice!, now + 3, 'admin')).rejects.toThrow(
          'posting context changed',
        );
        await expect(call(db, conversationId, randomUUID(), now + 4)).rejects.toThrow(
          'posting context changed',
        );
        const after = await db
          .selectFrom('user_streams')
          .select(['user_id', 'last_seq'])
          .where('user_id', 'in', [alice!, bob!])
          .orderBy('user_id')
          .execute();
        expect(after.map((s) => Number(s.last_seq))).toEqual([6, 1]);
        const conversation = await db
          .selectFrom('conversations')
          .select('last_seq')
          .where('id', '=', conversationId)
          .executeTakeFirstOrThrow();
        expect(Number(conversation.last_seq)).toBe(4);
        const { n } = await db
          .selectFrom('messages')
          .select((eb) => eb.fn.countAll<number>().as('n'))
          .where('sender_id', '=', alice!)
          .executeTakeFirstOrThrow();
        expect(Number(n)).toBe(1);
      } finally {
        await db.deleteFrom('conversations').where('id', '=', conversationId).execute();
        await db.deleteFrom('users').where('id', 'in', [alice!, bob!]).execute();
        await db.destroy();
      }
    });
  });
}
