import {
  sql,
  type ExpressionBuilder,
  type Kysely,
  type Selectable,
  type Transaction,
} from 'kysely';
import type { TMessage } from '@mvp/contracts';
import { prepared, type DB, type MessagesTable, type RunSync } from '@mvp/db';

type Db = Kysely<DB> | Transaction<DB>;
export type MessageRow = Selectable<MessagesTable>;

const iso = (ms: number | null) => (ms === null ? null : new Date(Number(ms)).toISOString());

/** The bytes in base64, read where they are (drivers answer Buffers; a copy would be garbage). */
function base64Of(bytes: Uint8Array): string {
  const buffer = Buffer.isBuffer(bytes)
    ? bytes
    : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return buffer.toString('base64');
}

export function toMessage(row: MessageRow, reactions: TMessage['reactions'] = []): TMessage {
  return {
    id: row.id,
    conversationId: row.conversation_id,
    seq: Number(row.seq),
    senderId: row.sender_id,
    senderDeviceId: row.sender_device_id,
    clientMessageId: row.client_message_id,
    contentType: row.content_type,
    ciphertext: row.ciphertext ? base64Of(row.ciphertext) : null,
    replyToSeq: row.reply_to_seq === null ? null : Number(row.reply_to_seq),
    forwarded: row.forwarded === 1,
    createdAt: iso(row.created_at)!,
    editedAt: iso(row.edited_at),
    deletedAt: iso(row.deleted_at),
    expiresAt: iso(row.expires_at),
    reactions,
  };
}

const refKey = (conversationId: string, seq: number) => `${conversationId}:${seq}`;

/** Messages as clients see them, with their reactions (one query per 500 messages). */
export async function describeMessages(db: Db, rows: MessageRow[]): Promise<TMessage[]> {
  const reactions = new Map<string, Map<string, string[]>>();
  for (let i = 0; i < rows.length; i += 500) {
    const chunk = rows.slice(i, i + 500).filter((r) => r.deleted_at === null);
    if (chunk.length === 0) continue;
    const found = await db
      .selectFrom('reactions')
      .select(['conversation_id', 'seq', 'emoji', 'user_id'])
      .where((eb) =>
        eb.or(
          chunk.map((r) =>
            eb.and([eb('conversation_id', '=', r.conversation_id), eb('seq', '=', r.seq)]),
          ),
        ),
      )
      .orderBy('created_at')
      .execute();
    for (const r of found) {
      const key = refKey(r.conversation_id, Number(r.seq));
      const byEmoji = reactions.get(key) ?? new Map<string, string[]>();
      byEmoji.set(r.emoji, [...(byEmoji.get(r.emoji) ?? []), r.user_id]);
      reactions.set(key, byEmoji);
    }
  }
  return rows.map((row) =>
    toMessage(
      row,
      [
        ...(reactions.get(refKey(row.conversation_id, Number(row.seq))) ??
          new Map<string, string[]>()),
      ].map(([emoji, userIds]) => ({ emoji, userIds })),
    ),
  );
}

export function findByClientId(
  db: Db,
  conversationId: string,
  senderId: string,
  clientMessageId: string,
) {
  return db
    .selectFrom('messages')
    .selectAll()
    .where('conversation_id', '=', conversationId)
    .where('sender_id', '=', senderId)
    .where('client_message_id', '=', clientMessageId)
    .executeTakeFirst();
}

/**
 * Whether the other member of the conversation `c` and I are in a block, the other member's id in
 * `theirs` (the blocker or the blocked) and mine in the other column. One direction per query:
 * with both in one OR'd join condition MariaDB scanned the whole blocks index on every send.
 */
function blockOf(
  eb: ExpressionBuilder<DB & { c: DB['conversations'] }, 'c'>,
  theirs: 'b.blocker_id' | 'b.blocked_id',
  me: string,
) {
  const mine = theirs === 'b.blocker_id' ? 'b.blocked_id' : 'b.blocker_id';
  return eb.exists(
    eb
      .selectFrom('conversation_members as o')
      .innerJoin('blocks as b', theirs, 'o.user_id')
      .select('b.blocker_id')
      .whereRef('o.conversation_id', '=', 'c.id')
      .where('o.user_id', '!=', me)
      .where(mine, '=', me),
  );
}

/**
 * Everything a post checks, in one query: the conversation, my membership, whether either side
 * of a direct conversation blocked the other. Undefined when the conversation is gone or I am not
 * a member.
 */
function postingQuery(db: Kysely<DB>, conversationId: string, me: string) {
  return db
    .selectFrom('conversations as c')
    .innerJoin('conversation_members as m', (join) =>
      join.onRef('m.conversation_id', '=', 'c.id').on('m.user_id', '=', me),
    )
    .select((eb) => [
      'c.kind',
      'c.last_seq',
      'c.slow_mode_seconds',
      'c.disappear_seconds',
      'm.role',
      'm.last_post_at',
      eb
        .case()
        .when('c.kind', '=', 'direct')
        .then(eb.or([blockOf(eb, 'b.blocker_id', me), blockOf(eb, 'b.blocked_id', me)]))
        .else(false)
        .end()
        .as('blocked'),
    ])
    .where('c.id', '=', conversationId);
}

// Runs on every send that misses the posting cache, and every edit: compiled once (see `prepared`).
const posting = prepared(postingQuery);

export async function postingContext(db: Kysely<DB>, conversationId: string, me: string) {
  return (await posting(db, conversationId, me)).rows[0];
}

// The in-process send's statements (SQLite), each compiled once (see `prepared`) and run
// synchronously in one transaction (see `syncTransaction`).

const bumpSeq = prepared((db: Kysely<DB>, conversationId: string, now: number) =>
  db
    .updateTable('conversations')
    .set((eb) => ({ last_seq: eb('last_seq', '+', 1), updated_at: now }))
    .where('id', '=', conversationId),
);

const readSeq = prepared((db: Kysely<DB>, conversationId: string) =>
  db.selectFrom('conversations').select('last_seq').where('id', '=', conversationId),
);

/**
 * The conversation's next seq: bumped, then read back under the row lock the bump took, as
 * mvp_send_message does. Undefined when the conversation is gone.
 */
export function nextSeq(run: RunSync<DB>, conversationId: string, now: number): number | undefined {
  run(bumpSeq, conversationId, now);
  const row = run(readSeq, conversationId).rows[0];
  return row ? Number(row.last_seq) : undefined;
}

const insertRow = prepared(
  (
    db: Kysely<DB>,
    conversationId: string,
    seq: number,
    id: string,
    senderId: string,
    senderDeviceId: string,
    clientMessageId: string,
    contentType: string,
    ciphertext: Uint8Array | null,
    replyToSeq: number | null,
    forwarded: number,
    createdAt: number,
    expiresAt: number | null,
  ) =>
    db.insertInto('messages').values({
      conversation_id: conversationId,
      seq,
      id,
      sender_id: senderId,
      sender_device_id: senderDeviceId,
      client_message_id: clientMessageId,
      content_type: contentType,
      ciphertext,
      reply_to_seq: replyToSeq,
      forwarded,
      created_at: createdAt,
      edited_at: null,
      deleted_at: null,
      expires_at: expiresAt,
    }),
);

/** A new message's row (not yet edited or deleted). */
export function insertMessage(run: RunSync<DB>, row: MessageRow) {
  return run(
    insertRow,
    row.conversation_id,
    row.seq,
    row.id,
    row.sender_id,
    row.sender_device_id,
    row.client_message_id,
    row.content_type,
    row.ciphertext,
    row.reply_to_seq,
    row.forwarded,
    row.created_at,
    row.expires_at,
  );
}

/**
 * My own message is delivered to and read by me; slow mode counts from it. Only while I am still a
 * member with the role the send was decided on, and (slow mode's slot, taken by the write itself)
 * my last post is at or before `postedBefore`: no row updated means one of those changed meanwhile
 * (`stillPosting` tells which). Not in slow mode, `postedBefore` is `NO_SLOW_MODE`.
 */
export const markPosted = prepared(
  (
    db: Kysely<DB>,
    conversationId: string,
    userId: string,
    role: string,
    seq: number,
    now: number,
    postedBefore: number,
  ) =>
    db
      .updateTable('conversation_members')
      .set({ delivered_seq: seq, read_seq: seq, last_post_at: now })
      .where('conversation_id', '=', conversationId)
      .where('user_id', '=', userId)
      .where('role', '=', role)
      .where((eb) =>
        eb.or([eb('last_post_at', 'is', null), eb('last_post_at', '<=', postedBefore)]),
      ),
);

/** `markPosted`'s `postedBefore` for a send slow mode does not space out. */
export const NO_SLOW_MODE = Number.MAX_SAFE_INTEGER;

/** After `markPosted` updated nothing: whether I am still a member with that role. */
export const stillPosting = prepared(
  (db: Kysely<DB>, conversationId: string, userId: string, role: string) =>
    db
      .selectFrom('conversation_members')
      .select('role')
      .where('conversation_id', '=', conversationId)
      .where('user_id', '=', userId)
      .where('role', '=', role),
);

/** The query for one message's row (`locking` may make it a locking read). */
export function messageAt(db: Db, conversationId: string, seq: number) {
  return db
    .selectFrom('messages')
    .selectAll()
    .where('conversation_id', '=', conversationId)
    .where('seq', '=', seq);
}

/** One message to show or act on: undefined once gone, or past its timer (see notExpired). */
export function findMessage(db: Db, conversationId: string, seq: number, now: number) {
  return messageAt(db, conversationId, seq)
    .where((eb) => notExpired(eb, now))
    .executeTakeFirst();
}

/**
 * A condition on `messages`: not past its disappearing timer. The purge deletes such rows about
 * a second later (longer when the instance running it died); until then every read that shows
 * messages reads them as already gone, not only the SDK (which drops them on the device).
 */
export function notExpired(eb: ExpressionBuilder<DB, 'messages'>, now: number) {
  return eb.or([eb('messages.expires_at', 'is', null), eb('messages.expires_at', '>', now)]);
}

/** Seqs in (`after`, `upTo`]. */
export type SeqRange = { after: number; upTo: number };

/** A conversation's seq ranges that a receipt of mine reaches over. */
export type ConversationRanges = { conversationId: string; ranges: SeqRange[] };

/**
 * Per conversation, the current members other than `me` who sent a message with a seq in any of
 * its `ranges`: those a receipt reaching over them is news to. Tombstones count (their place is
 * still theirs). One query for all the conversations.
 */
export async function sendersIn(
  db: Db,
  me: string,
  news: ConversationRanges[],
): Promise<Map<string, string[]>> {
  const senders = new Map<string, string[]>();
  const wanted = news.filter((n) => n.ranges.length > 0);
  if (wanted.length === 0) return senders;
  const rows = await sendersQuery(db, me, wanted).execute();
  for (const { conversation_id, sender_id } of rows) {
    const list = senders.get(conversation_id);
    if (list) list.push(sender_id);
    else senders.set(conversation_id, [sender_id]);
  }
  return senders;
}

/**
 * Messages of `conversationId` with a seq in any of `ranges` (at least one). The ranges' hull goes
 * beside their OR (the exact filter): with the OR alone SQLite looked the conversation up in the
 * client-id index and read every message of it (56 ms at 100k messages, 0.02 ms with one range);
 * with the hull it reads a primary key range.
 */
function inRanges(
  eb: ExpressionBuilder<DB & { m: DB['messages'] }, 'm'>,
  conversationId: string,
  ranges: SeqRange[],
) {
  const within = (after: number, upTo: number) => [
    eb('m.seq', '>', after),
    eb('m.seq', '<=', upTo),
  ];
  const hull = within(
    Math.min(...ranges.map((r) => r.after)),
    Math.max(...ranges.map((r) => r.upTo)),
  );
  const exact =
    ranges.length > 1 ? [eb.or(ranges.map((r) => eb.and(within(r.after, r.upTo))))] : [];
  return eb.and([eb('m.conversation_id', '=', conversationId), ...hull, ...exact]);
}

/**
 * sendersIn's query, for conversations with at least one range each. A receipt tells when I read:
 * nothing for someone I blocked or who blocked me (as Signal).
 */
export function sendersQuery(db: Db, me: string, wanted: ConversationRanges[]) {
  return db
    .selectFrom('messages as m')
    .innerJoin('conversation_members as cm', (join) =>
      join
        .onRef('cm.conversation_id', '=', 'm.conversation_id')
        .onRef('cm.user_id', '=', 'm.sender_id'),
    )
    .select(['m.conversation_id', 'm.sender_id'])
    .distinct()
    .where((eb) =>
      eb.or(wanted.map(({ conversationId, ranges }) => inRanges(eb, conversationId, ranges))),
    )
    .where('m.sender_id', '!=', me)
    .where((eb) =>
      eb.not(
        eb.exists(
          eb
            .selectFrom('blocks as b')
            .select('b.blocker_id')
            .where((b) =>
              b.or([
                b.and([b('b.blocker_id', '=', me), b('b.blocked_id', '=', b.ref('m.sender_id'))]),
                b.and([b('b.blocked_id', '=', me), b('b.blocker_id', '=', b.ref('m.sender_id'))]),
              ]),
            ),
        ),
      ),
    );
}

const POSITIONS = [
  'cm.conversation_id',
  'cm.joined_seq',
  'cm.delivered_seq',
  'cm.read_seq',
  'cm.told_delivered_seq',
  'cm.told_read_seq',
] as const;

/**
 * My positions in those of these conversations I am a member of, with each one's newest seq:
 * what a mark is checked against before its transaction. None for a conversation I am not in.
 */
export function myMarkTargets(db: Db, me: string, conversationIds: string[]) {
  return db
    .selectFrom('conversation_members as cm')
    .innerJoin('conversations as c', 'c.id', 'cm.conversation_id')
    .select([...POSITIONS, 'c.last_seq'])
    .where('cm.user_id', '=', me)
    .where('cm.conversation_id', 'in', conversationIds)
    .execute();
}

/**
 * My positions in these conversations and how far the others were told they reach; on MySQL the
 * rows stay locked for the transaction, taken in conversation id order (the primary key's, which
 * the scan follows whichever index it uses), so two marks at once cannot both start from the same
 * place and two batches of marks cannot deadlock on each other's rows (SQLite runs one
 * transaction at a time).
 */
export function myPositions(
  trx: Transaction<DB>,
  conversationIds: string[],
  me: string,
  lock: boolean,
) {
  const query = trx
    .selectFrom('conversation_members as cm')
    .select(POSITIONS)
    .where('cm.user_id', '=', me)
    .where('cm.conversation_id', 'in', conversationIds)
    .orderBy('cm.conversation_id');
  return (lock ? query.forUpdate() : query).execute();
}

/**
 * My positions in several conversations set at once, and "told" with them (the receipts are
 * written in the same transaction): one statement, whatever the number.
 */
export async function setMyPositions(
  trx: Transaction<DB>,
  me: string,
  to: { conversationId: string; deliveredSeq: number; readSeq: number }[],
): Promise<void> {
  if (to.length === 0) return;
  const each = (seq: (row: (typeof to)[number]) => number) =>
    sql<number>`case ${sql.ref('conversation_id')} ${sql.join(
      to.map((row) => sql`when ${row.conversationId} then ${seq(row)}`),
      sql` `,
    )} end`;
  await trx
    .updateTable('conversation_members')
    .set({
      delivered_seq: each((row) => row.deliveredSeq),
      read_seq: each((row) => row.readSeq),
      told_delivered_seq: each((row) => row.deliveredSeq),
      told_read_seq: each((row) => row.readSeq),
    })
    .where('user_id', '=', me)
    .where(
      'conversation_id',
      'in',
      to.map((row) => row.conversationId),
    )
    .execute();
}

type MessageRef = { conversationId: string; seq: number };

/** The messages of these (conversation, seq) pairs. */
const byRefs = (refs: MessageRef[]) => (eb: ExpressionBuilder<DB, 'messages'>) =>
  eb.or(
    refs.map((r) =>
      eb.and([
        eb('messages.conversation_id', '=', r.conversationId),
        eb('messages.seq', '=', r.seq),
      ]),
    ),
  );

/** Messages by (conversation, seq) pairs, keyed `<conversationId>:<seq>`; one query per 500. */
export async function findBySeqs(
  db: Db,
  refs: MessageRef[],
  now: number,
): Promise<Map<string, MessageRow>> {
  const found = new Map<string, MessageRow>();
  for (let i = 0; i < refs.length; i += 500) {
    const rows = await db
      .selectFrom('messages')
      .selectAll()
      .where(byRefs(refs.slice(i, i + 500)))
      .where((eb) => notExpired(eb, now))
      .execute();
    for (const row of rows) found.set(refKey(row.conversation_id, Number(row.seq)), row);
  }
  return found;
}

/**
 * How `reader` stands to a message: `seen` when their history shows it (a member who joined
 * before it), `joinedAfter` when they are a member who joined after it. Neither: no longer a
 * member.
 */
export type ReaderView = { row: MessageRow; seen: boolean; joinedAfter: boolean };

/**
 * findBySeqs as `reader` may see them: each row with how the reader stands to it, from their
 * membership in the same query.
 */
export async function findBySeqsFor(
  db: Db,
  reader: string,
  refs: MessageRef[],
  /** Leaves out messages past their timer at this time (null: keeps them). */
  now: number | null,
): Promise<Map<string, ReaderView>> {
  const found = new Map<string, ReaderView>();
  for (let i = 0; i < refs.length; i += 500) {
    const rows = await db
      .selectFrom('messages')
      .leftJoin('conversation_members as cm', (join) =>
        join
          .onRef('cm.conversation_id', '=', 'messages.conversation_id')
          .on('cm.user_id', '=', reader),
      )
      .selectAll('messages')
      .select('cm.joined_seq')
      .where(byRefs(refs.slice(i, i + 500)))
      .$if(now !== null, (q) => q.where((eb) => notExpired(eb, now!)))
      .execute();
    for (const { joined_seq, ...row } of rows) {
      const member = joined_seq !== null;
      const seen = member && Number(row.seq) > Number(joined_seq);
      found.set(refKey(row.conversation_id, Number(row.seq)), {
        row,
        seen,
        joinedAfter: member && !seen,
      });
    }
  }
  return found;
}

/** A condition on `messages` (alone or joined): not a message `viewerId` deleted for themselves. */
export function notHiddenFor(
  eb: ExpressionBuilder<DB, 'messages'>,
  viewerId: string,
  conversationId: string,
) {
  return eb.not(
    eb.exists(
      eb
        .selectFrom('message_hidden as h')
        .select('h.seq')
        .where('h.user_id', '=', viewerId)
        .where('h.conversation_id', '=', conversationId)
        .whereRef('h.seq', '=', 'messages.seq'),
    ),
  );
}

/** A page of history, never reaching at or below `floorSeq` (messages from before I joined). */
export async function page(
  db: Db,
  viewerId: string,
  conversationId: string,
  floorSeq: number,
  range: { before?: number; after?: number },
  limit: number,
  now: number,
): Promise<MessageRow[]> {
  let query = db
    .selectFrom('messages')
    .selectAll()
    .where('conversation_id', '=', conversationId)
    .where('seq', '>', Math.max(floorSeq, range.after ?? 0))
    .where((eb) => notExpired(eb, now))
    // Deleted for me: gone from my history only.
    .where((eb) => notHiddenFor(eb, viewerId, conversationId));
  if (range.before !== undefined) query = query.where('seq', '<', range.before);
  return query
    .orderBy('seq', range.after !== undefined ? 'asc' : 'desc')
    .limit(limit)
    .execute();
}
