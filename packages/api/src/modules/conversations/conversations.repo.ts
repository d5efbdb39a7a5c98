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
export function listMine(db: Db, userId: string) {
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
    .where('m.user_id', '=', userId)
    .orderBy('c.updated_at', 'desc')
    .orderBy('c.id')
    .execute();
}

/** Unread seqs listed one by one in the snapshot up to this many per conversation. */
export const UNREAD_SEQS_LISTED = 100;

/**
 * Messages from others after my read position, per conversation. Tombstones and messages I
 * deleted for me do not count: my history does not show them, and the SDK's count drops them.
 * Up to `UNREAD_SEQS_LISTED` they are also listed by seq (null past it): a count alone cannot say
 * whether a message removed later was one it counted, a list can, so the SDK's count stays exact.
 * Counted by `GROUP BY`, then listed for the conversations under the bound only: window functions
 * over every unread row cost five times the count on big backlogs (measured on SQLite).
 */
export async function unreadCounts(
  db: Db,
  userId: string,
): Promise<Map<string, { count: number; seqs: number[] | null }>> {
  const unread = db
    .selectFrom('conversation_members as m')
    .innerJoin('messages as msg', 'msg.conversation_id', 'm.conversation_id')
    .where('m.user_id', '=', userId)
    .whereRef('msg.seq', '>', 'm.read_seq')
    .whereRef('msg.seq', '>', 'm.joined_seq')
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
  const rows = await unread
    .select(['m.conversation_id', (eb) => eb.fn.countAll<number>().as('unread')])
    .groupBy('m.conversation_id')
    .execute();
  const counts = new Map<string, { count: number; seqs: number[] | null }>();
  for (const row of rows) {
    const count = Number(row.unread);
    counts.set(row.conversation_id, { count, seqs: count <= UNREAD_SEQS_LISTED ? [] : null });
  }
  const listed = [...counts].filter(([, entry]) => entry.seqs).map(([id]) => id);
  // In chunks: an IN list of every conversation could pass SQLite's variable limit.
  for (let i = 0; i < listed.length; i += LIST_CHUNK) {
    const seqs = await unread
      .select(['m.conversation_id', 'msg.seq'])
      .where('m.conversation_id', 'in', listed.slice(i, i + LIST_CHUNK))
      .orderBy('m.conversation_id')
      .orderBy('msg.seq')
      .execute();
    for (const row of seqs) counts.get(row.conversation_id)?.seqs?.push(Number(row.seq));
  }
  return counts;
}

/** Conversations whose unread seqs one read lists. */
const LIST_CHUNK = 500;
