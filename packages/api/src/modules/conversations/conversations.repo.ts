import type { Kysely, Selectable, Transaction } from 'kysely';
import type { TConversation, TMemberRole } from '@mvp/contracts';
import { prepared, type ConversationMembersTable, type ConversationsTable, type DB } from '@mvp/db';

type Db = Kysely<DB> | Transaction<DB>;
export type ConversationRow = Selectable<ConversationsTable>;
export type MemberRow = Selectable<ConversationMembersTable>;

/** One key per pair whatever the order, so a UNIQUE column makes "one direct chat per pair". */
export const directKeyOf = (a: string, b: string) => (a < b ? `${a}:${b}` : `${b}:${a}`);

export function toConversation(
  row: ConversationRow,
  me: Pick<MemberRow, 'role' | 'user_id'>,
): TConversation {
  const peerId = row.direct_key
    ? (row.direct_key.split(':').find((id) => id !== me.user_id) ?? me.user_id)
    : null;
  return {
    id: row.id,
    kind: row.kind as TConversation['kind'],
    title: row.title,
    description: row.description,
    avatarUrl: row.avatar_key ? `/${row.avatar_key}` : null,
    peerId,
    memberCount: Number(row.member_count),
    myRole: me.role as TMemberRole,
    lastSeq: Number(row.last_seq),
    slowModeSeconds: Number(row.slow_mode_seconds),
    disappearSeconds: Number(row.disappear_seconds),
    createdAt: new Date(Number(row.created_at)).toISOString(),
  };
}

export function findConversation(db: Db, id: string) {
  return db.selectFrom('conversations').selectAll().where('id', '=', id).executeTakeFirst();
}

export function findMembership(db: Db, conversationId: string, userId: string) {
  return db
    .selectFrom('conversation_members')
    .selectAll()
    .where('conversation_id', '=', conversationId)
    .where('user_id', '=', userId)
    .executeTakeFirst();
}

// Every send reads the members: compiled once (see `prepared`).
const membersOf = prepared((db: Kysely<DB>, conversationId: string) =>
  db
    .selectFrom('conversation_members')
    .select('user_id')
    .where('conversation_id', '=', conversationId),
);

export async function memberIds(db: Db, conversationId: string): Promise<string[]> {
  return (await membersOf(db, conversationId)).rows.map((r) => r.user_id);
}

/** Members whose history shows message `seq` (they joined before it was sent). */
export async function memberIdsSeeing(
  db: Db,
  conversationId: string,
  seq: number,
): Promise<string[]> {
  const rows = await db
    .selectFrom('conversation_members')
    .select('user_id')
    .where('conversation_id', '=', conversationId)
    .where('joined_seq', '<', seq)
    .execute();
  return rows.map((r) => r.user_id);
}

/** The members with whether each shares read receipts (their `readReceipts` setting). */
export function listMembers(db: Db, conversationId: string) {
  return db
    .selectFrom('conversation_members as m')
    .innerJoin('users as u', 'u.id', 'm.user_id')
    .selectAll('m')
    .select('u.privacy_read_receipts')
    .where('m.conversation_id', '=', conversationId)
    .orderBy('m.joined_at')
    .orderBy('m.user_id')
    .execute();
}

/** My conversations with my membership row, newest activity first. */
function mine(db: Db, userId: string) {
  return db
    .selectFrom('conversation_members as m')
    .innerJoin('conversations as c', 'c.id', 'm.conversation_id')
    .selectAll('c')
    .select([
      'm.role as my_role',
      'm.read_seq as my_read_seq',
      'm.delivered_seq as my_delivered_seq',
      'm.joined_seq as my_joined_seq',
    ])
    .where('m.user_id', '=', userId);
}

export type MineRow = Awaited<ReturnType<typeof listMine>>[number];

export function listMine(db: Db, userId: string) {
  return mine(db, userId).orderBy('c.updated_at', 'desc').orderBy('c.id').execute();
}

/**
 * At most `n` of my conversations after the id `after` (null: from the first), by id: one range
 * of the memberships' (user_id, conversation_id) index.
 */
export function mineAfterQuery(db: Db, userId: string, after: string | null, n: number) {
  return mine(db, userId)
    .$if(after !== null, (q) => q.where('m.conversation_id', '>', after!))
    .orderBy('m.conversation_id')
    .limit(n);
}

export const listMineAfter = (db: Db, userId: string, after: string | null, n: number) =>
  mineAfterQuery(db, userId, after, n).execute();

/**
 * When each of `userIds` last posted in the conversation, for those who did: a range of the
 * (conversation_id, sender_id, client_message_id) unique index per sender.
 */
export async function lastPostsIn(
  db: Db,
  conversationId: string,
  userIds: string[],
): Promise<Map<string, number>> {
  if (userIds.length === 0) return new Map();
  const rows = await db
    .selectFrom('messages')
    .select(['sender_id', (eb) => eb.fn.max('created_at').as('at')])
    .where('conversation_id', '=', conversationId)
    .where('sender_id', 'in', userIds)
    .groupBy('sender_id')
    .execute();
  return new Map(rows.map((r) => [r.sender_id, Number(r.at)]));
}

/** Unread seqs listed one by one in the snapshot up to this many per conversation. */
export const UNREAD_SEQS_LISTED = 100;

/**
 * Where my unread messages of a conversation start (after my read position and my joining) and
 * end (its last seq as read with them).
 */
export type UnreadFrom = { conversationId: string; after: number; upTo: number };

/**
 * Others' messages after `from`'s positions, as my history shows them: not tombstones, not
 * messages I deleted for me. Each conversation's bound is a constant, so both databases read a
 * primary key range per conversation; joined to my memberships (`seq > read_seq`) MariaDB looked
 * messages up by conversation only and read every message of every conversation I am in.
 */
export function unreadQuery(db: Db, userId: string, from: UnreadFrom[]) {
  return db
    .selectFrom('messages as msg')
    .where((eb) =>
      eb.or(
        from.map((f) =>
          eb.and([
            eb('msg.conversation_id', '=', f.conversationId),
            eb('msg.seq', '>', f.after),
            eb('msg.seq', '<=', f.upTo),
          ]),
        ),
      ),
    )
    .where('msg.sender_id', '!=', userId)
    .where('msg.deleted_at', 'is', null)
    .where((eb) =>
      eb.not(
        eb.exists(
          eb
            .selectFrom('message_hidden as h')
            .select('h.seq')
            .where('h.user_id', '=', userId)
            .whereRef('h.conversation_id', '=', 'msg.conversation_id')
            .whereRef('h.seq', '=', 'msg.seq'),
        ),
      ),
    );
}

/**
 * Messages from others after my read position, per conversation. Tombstones and messages I
 * deleted for me do not count: my history does not show them, and the SDK's count drops them.
 * Up to `UNREAD_SEQS_LISTED` they are also listed by seq (null past it): a count alone cannot say
 * whether a message removed later was one it counted, a list can, so the SDK's count stays exact.
 * Counted by `GROUP BY`, then listed for the conversations under the bound only: window functions
 * over every unread row cost five times the count on big backlogs (measured on SQLite).
 * Of the conversations `mine` (my memberships as `listMine` reads them, with the same `db`: in
 * the snapshot's transaction, one moment), only those that went on past my positions are read.
 */
export async function unreadCounts(
  db: Db,
  userId: string,
  mine: Pick<MineRow, 'id' | 'last_seq' | 'my_read_seq' | 'my_joined_seq'>[],
): Promise<Map<string, { count: number; seqs: number[] | null }>> {
  const from = new Map<string, UnreadFrom>();
  for (const c of mine) {
    const after = Math.max(Number(c.my_read_seq), Number(c.my_joined_seq));
    // Up to the last seq as read with the membership: a message sent between the two reads
    // counts once, in the next page or on the stream, not also here (outside a transaction).
    const upTo = Number(c.last_seq);
    if (upTo > after) from.set(c.id, { conversationId: c.id, after, upTo });
  }
  const counts = new Map<string, { count: number; seqs: number[] | null }>();
  // In chunks: a term per conversation could pass SQLite's variable limit.
  const unread = [...from.values()];
  for (let i = 0; i < unread.length; i += LIST_CHUNK) {
    const rows = await unreadQuery(db, userId, unread.slice(i, i + LIST_CHUNK))
      .select(['msg.conversation_id', (eb) => eb.fn.countAll<number>().as('unread')])
      .groupBy('msg.conversation_id')
      .execute();
    for (const row of rows) {
      const count = Number(row.unread);
      counts.set(row.conversation_id, { count, seqs: count <= UNREAD_SEQS_LISTED ? [] : null });
    }
  }
  const listed = [...counts].filter(([, entry]) => entry.seqs).map(([id]) => from.get(id)!);
  for (let i = 0; i < listed.length; i += LIST_CHUNK) {
    const rows = await unreadQuery(db, userId, listed.slice(i, i + LIST_CHUNK))
      .select(['msg.conversation_id', 'msg.seq'])
      .orderBy('msg.conversation_id')
      .orderBy('msg.seq')
      .execute();
    for (const row of rows) counts.get(row.conversation_id)?.seqs?.push(Number(row.seq));
  }
  return counts;
}

/** Conversations whose unread messages one read counts or lists. */
const LIST_CHUNK = 500;
