import { sql, type Kysely, type Transaction, type Updateable } from 'kysely';
import { uuidv7 } from 'uuidv7';
import type { TMessage } from '@mvp/contracts';
import { isDeadlock, isUniqueViolation, type DB, type MessagesTable } from '@mvp/db';
import type { Context } from '../../context';
import { AppError } from '../../errors/AppError';
import { enforceLimit } from '../../rateLimit';
import { memberIds } from '../conversations/conversations.repo';
import { requireMember } from '../conversations/conversations.service';
import { recordEvents, recordForMembers, StreamWrites, wake } from '../sync/events';
import * as repo from './messages.repo';

type Sender = { userId: string; deviceId: string };
type MessageRef = { conversationId: string; seq: number };
export type SendInput = {
  conversationId: string;
  clientMessageId: string;
  contentType: string;
  ciphertext: string;
  replyToSeq?: number;
  forwarded: boolean;
};

const ADMINS: readonly string[] = ['owner', 'admin'];
/** Distinct emoji one member may put on one message. */
const MAX_REACTIONS_PER_USER = 20;

/** One point of the account's send budget (messages, edits, envelope batches). */
export function spendSend(ctx: Context, userId: string): Promise<void> {
  return enforceLimit(ctx, 'send-account', ctx.settings.messaging.sendLimit, userId);
}

function decodeCiphertext(ctx: Context, ciphertext: string): Buffer {
  const bytes = Buffer.from(ciphertext, 'base64');
  const max = ctx.settings.messaging.maxCiphertextBytes;
  if (bytes.length > max)
    throw new AppError('PAYLOAD_TOO_LARGE', `Ciphertext larger than ${max} bytes`);
  return bytes;
}

type Posting = NonNullable<Awaited<ReturnType<typeof repo.postingContext>>>;

/** The conversation and my membership, with what posting checks; NOT_FOUND if not a member. */
async function postingContext(ctx: Context, conversationId: string, me: string): Promise<Posting> {
  const posting = await repo.postingContext(ctx.ports.db, conversationId, me);
  if (!posting) throw new AppError('NOT_FOUND', 'No such conversation');
  return posting;
}

/**
 * Who may post: members, except restricted ones; in a channel only the owner and admins; in a
 * direct conversation nobody once either side blocked the other. Slow mode spaces out one
 * member's messages (admins exempt) and answers the wait.
 */
function assertMayPost(ctx: Context, posting: Posting): void {
  const admin = ADMINS.includes(posting.role);
  if (posting.role === 'restricted') throw new AppError('FORBIDDEN', 'You can only read here');
  if (posting.kind === 'channel' && !admin)
    throw new AppError('FORBIDDEN', 'Only admins post in a channel');
  if (posting.kind === 'direct' && Boolean(Number(posting.blocked)))
    throw new AppError('FORBIDDEN', 'You cannot message this user');
  const slowMs = Number(posting.slow_mode_seconds) * 1000;
  if (slowMs > 0 && !admin && posting.last_post_at !== null) {
    const waitMs = Number(posting.last_post_at) + slowMs - ctx.ports.clock.now();
    if (waitMs > 0)
      throw new AppError('TOO_MANY_REQUESTS', 'Slow mode: wait before sending again', {
        retryAfterMs: waitMs,
      });
  }
}

type NewMessage = Omit<repo.MessageRow, 'seq'>;
/** A row of mvp_send_message's answer: the message's seq, a member and their new stream seq. */
type StreamSeq = { seq: number; user_id: string; last_seq: number };

/**
 * The send's transaction, in process (SQLite): the conversation's next seq, bumped under its
 * row lock (held to commit, so seqs are gapless and in commit order), the message row, my own
 * read position and slow-mode clock, then `message.new` on every member's stream, the members
 * read under that lock. mvp_send_message (migration T0700) does the same on MySQL.
 */
async function writeInProcess(
  db: Kysely<DB>,
  fresh: NewMessage,
  writes: StreamWrites,
): Promise<TMessage> {
  return db.transaction().execute(async (trx) => {
    const seq = await repo.nextSeq(trx, fresh.conversation_id, fresh.created_at);
    if (seq === undefined) throw new Error('conversation vanished during a send');
    const row: repo.MessageRow = { ...fresh, seq };
    await repo.insertMessage(trx, row);
    await repo.markPosted(trx, row.conversation_id, row.sender_id, row.seq, row.created_at);
    const message = repo.toMessage(row);
    await recordForMembers(
      trx,
      row.conversation_id,
      { type: 'message.new', message },
      row.created_at,
      writes,
    );
    return message;
  });
}

/**
 * The same transaction on MySQL, as one call of the stored procedure mvp_send_message
 * (migration T0700): one round trip instead of nine, which is most of a send's cost there. It
 * answers the seq and each member's new stream seq.
 */
async function writeByProcedure(
  db: Kysely<DB>,
  fresh: NewMessage,
  writes: StreamWrites,
): Promise<TMessage> {
  const result = await sql<
    StreamSeq[]
  >`CALL mvp_send_message(${fresh.conversation_id}, ${fresh.id}, ${fresh.sender_id}, ${fresh.sender_device_id}, ${fresh.client_message_id}, ${fresh.content_type}, ${fresh.ciphertext}, ${fresh.reply_to_seq}, ${fresh.forwarded}, ${fresh.created_at}, ${fresh.expires_at})`.execute(
    db,
  );
  // A CALL answers its result set, then the procedure's own status.
  const streams = result.rows[0]!;
  const message = repo.toMessage({ ...fresh, seq: Number(streams[0]!.seq) });
  const event = { type: 'message.new' as const, message };
  for (const s of streams) writes.add(s.user_id, { seq: Number(s.last_seq), event });
  return message;
}

/** The answer to a resend: the message its client message id stored the first time. */
async function firstSent(ctx: Context, conversationId: string, seq: number): Promise<TMessage> {
  const row = (await repo.findMessage(ctx.ports.db, conversationId, seq))!;
  return (await repo.describeMessages(ctx.ports.db, [row]))[0]!;
}

/**
 * Stores an opaque ciphertext as the conversation's next message. The seq comes from the
 * conversation row, bumped inside the writing transaction, so it is gapless and in commit order;
 * the same transaction appends `message.new` to every member's stream. A resend with the same
 * client message id answers the message stored the first time and writes nothing.
 */
export async function sendMessage(
  ctx: Context,
  sender: Sender,
  input: SendInput,
): Promise<TMessage> {
  const db = ctx.ports.db;
  const me = sender.userId;
  await spendSend(ctx, me);
  const posting = await repo.sendingContext(db, input.conversationId, me, input.clientMessageId);
  const firstSeq = posting?.first_seq;
  if (firstSeq !== null && firstSeq !== undefined)
    return firstSent(ctx, input.conversationId, Number(firstSeq));
  if (!posting) {
    // No longer a member, but this one got through before: still its answer.
    const first = await repo.findByClientId(db, input.conversationId, me, input.clientMessageId);
    if (first) return firstSent(ctx, input.conversationId, Number(first.seq));
    throw new AppError('NOT_FOUND', 'No such conversation');
  }

  const bytes = decodeCiphertext(ctx, input.ciphertext);
  assertMayPost(ctx, posting);
  if (input.replyToSeq !== undefined && input.replyToSeq > Number(posting.last_seq))
    throw new AppError('BAD_REQUEST', 'replyToSeq names no message');

  const now = ctx.ports.clock.now();
  // The timer as read just before: a change racing this send may apply from the next one.
  const timer = Number(posting.disappear_seconds);
  const fresh: NewMessage = {
    conversation_id: input.conversationId,
    id: uuidv7(),
    sender_id: me,
    sender_device_id: sender.deviceId,
    client_message_id: input.clientMessageId,
    content_type: input.contentType,
    ciphertext: bytes,
    reply_to_seq: input.replyToSeq ?? null,
    forwarded: input.forwarded ? 1 : 0,
    created_at: now,
    edited_at: null,
    deleted_at: null,
    expires_at: timer > 0 ? now + timer * 1000 : null,
  };
  const write = ctx.ports.dialect === 'mysql' ? writeByProcedure : writeInProcess;
  let writes = new StreamWrites();
  let message: TMessage;
  try {
    // Two group sends sharing members lock their streams in the same (user id) order, but the
    // database may still pick one as a deadlock victim: that one is simply written again.
    for (let attempt = 1; ; attempt++) {
      try {
        message = await write(db, fresh, writes);
        break;
      } catch (err) {
        if (!isDeadlock(err) || attempt === 3) throw err;
        writes = new StreamWrites();
      }
    }
  } catch (err) {
    // The same client message id raced itself: the first one is the answer.
    if (!isUniqueViolation(err)) throw err;
    const winner = await repo.findByClientId(db, input.conversationId, me, input.clientMessageId);
    if (!winner) throw err;
    return repo.toMessage(winner);
  }
  await writes.wake(ctx.ports);
  return message;
}

export async function history(
  ctx: Context,
  me: string,
  input: { conversationId: string; before?: number; after?: number; limit: number },
) {
  const { membership } = await requireMember(ctx, input.conversationId, me);
  const rows = await repo.page(
    ctx.ports.db,
    me,
    input.conversationId,
    Number(membership.joined_seq),
    input,
    input.limit + 1,
  );
  const more = rows.length > input.limit;
  return {
    messages: await repo.describeMessages(ctx.ports.db, rows.slice(0, input.limit)),
    more,
  };
}

/** A message I can see (after I joined), with my membership; NOT_FOUND otherwise. */
async function visibleMessage(ctx: Context, me: string, ref: MessageRef) {
  const { conversation, membership } = await requireMember(ctx, ref.conversationId, me);
  const row = await repo.findMessage(ctx.ports.db, ref.conversationId, ref.seq);
  if (!row || Number(row.seq) <= Number(membership.joined_seq))
    throw new AppError('NOT_FOUND', 'No such message');
  return { conversation, membership, row };
}

/** Applies a change to one message and tells every member with `message.updated`. */
async function updateAndTell(
  ctx: Context,
  ref: MessageRef,
  change: Updateable<MessagesTable>,
  extra?: (trx: Transaction<DB>) => Promise<void>,
): Promise<TMessage> {
  const now = ctx.ports.clock.now();
  const members = await memberIds(ctx.ports.db, ref.conversationId);
  const row = await ctx.ports.db.transaction().execute(async (trx) => {
    await trx
      .updateTable('messages')
      .set(change)
      .where('conversation_id', '=', ref.conversationId)
      .where('seq', '=', ref.seq)
      .execute();
    await extra?.(trx);
    const updated = (await repo.findMessage(trx, ref.conversationId, ref.seq))!;
    await recordEvents(
      trx,
      members,
      { type: 'message.updated', message: repo.toMessage(updated) },
      now,
    );
    return updated;
  });
  await wake(ctx.ports, members);
  return (await repo.describeMessages(ctx.ports.db, [row]))[0]!;
}

/** The sender replaces the ciphertext; `editedAt` shows it. A deleted message stays deleted. */
export async function editMessage(
  ctx: Context,
  me: string,
  input: MessageRef & { contentType: string; ciphertext: string },
): Promise<TMessage> {
  await spendSend(ctx, me);
  const bytes = decodeCiphertext(ctx, input.ciphertext);
  const { row } = await visibleMessage(ctx, me, input);
  if (row.sender_id !== me) throw new AppError('FORBIDDEN', 'Only the sender edits a message');
  if (row.deleted_at !== null) throw new AppError('BAD_REQUEST', 'This message was deleted');
  assertMayPost(ctx, await postingContext(ctx, input.conversationId, me));
  return updateAndTell(ctx, input, {
    ciphertext: bytes,
    content_type: input.contentType,
    edited_at: ctx.ports.clock.now(),
  });
}

/**
 * Deletes for everyone (the sender, or an admin of a group or channel): the bytes go, a tombstone
 * keeps the seq in order, and its reactions and pin go too.
 */
export async function deleteForEveryone(
  ctx: Context,
  me: string,
  ref: MessageRef,
): Promise<TMessage> {
  const { conversation, membership, row } = await visibleMessage(ctx, me, ref);
  const admin = conversation.kind !== 'direct' && ADMINS.includes(membership.role);
  if (row.sender_id !== me && !admin)
    throw new AppError('FORBIDDEN', 'Only the sender or an admin deletes for everyone');
  if (row.deleted_at !== null) return (await repo.describeMessages(ctx.ports.db, [row]))[0]!;
  return updateAndTell(
    ctx,
    ref,
    { ciphertext: null, deleted_at: ctx.ports.clock.now() },
    async (trx) => {
      for (const table of ['reactions', 'pins'] as const) {
        await trx
          .deleteFrom(table)
          .where('conversation_id', '=', ref.conversationId)
          .where('seq', '=', ref.seq)
          .execute();
      }
    },
  );
}

/** Hides a message from my history on all my devices; everyone else keeps it. */
export async function deleteForMe(ctx: Context, me: string, ref: MessageRef): Promise<void> {
  await visibleMessage(ctx, me, ref);
  const now = ctx.ports.clock.now();
  try {
    await ctx.ports.db.transaction().execute(async (trx) => {
      await trx
        .insertInto('message_hidden')
        .values({ user_id: me, conversation_id: ref.conversationId, seq: ref.seq })
        .execute();
      await recordEvents(
        trx,
        [me],
        {
          type: 'messages.removed',
          conversationId: ref.conversationId,
          seqs: [ref.seq],
          reason: 'deleted_for_me',
        },
        now,
      );
    });
  } catch (err) {
    if (!isUniqueViolation(err)) throw err; // already hidden: nothing to do
    return;
  }
  await wake(ctx.ports, [me]);
}

/** Adds or removes one emoji of mine on a message; a set per member, so repeats change nothing. */
export async function react(
  ctx: Context,
  me: string,
  input: MessageRef & { emoji: string; on: boolean },
): Promise<void> {
  const { row } = await visibleMessage(ctx, me, input);
  if (row.deleted_at !== null) throw new AppError('BAD_REQUEST', 'This message was deleted');
  const db = ctx.ports.db;
  const where = {
    conversation_id: input.conversationId,
    seq: input.seq,
    user_id: me,
  };
  const mine = await db
    .selectFrom('reactions')
    .select('emoji')
    .where('conversation_id', '=', where.conversation_id)
    .where('seq', '=', where.seq)
    .where('user_id', '=', me)
    .execute();
  const has = mine.some((r) => r.emoji === input.emoji);
  if (has === input.on) return;
  if (input.on && mine.length >= MAX_REACTIONS_PER_USER)
    throw new AppError('BAD_REQUEST', 'Too many reactions on one message');
  const now = ctx.ports.clock.now();
  const members = await memberIds(db, input.conversationId);
  try {
    await db.transaction().execute(async (trx) => {
      if (input.on) {
        await trx
          .insertInto('reactions')
          .values({ ...where, emoji: input.emoji, created_at: now })
          .execute();
      } else {
        await trx
          .deleteFrom('reactions')
          .where('conversation_id', '=', where.conversation_id)
          .where('seq', '=', where.seq)
          .where('user_id', '=', me)
          .where('emoji', '=', input.emoji)
          .execute();
      }
      await recordEvents(
        trx,
        members,
        {
          type: 'reaction',
          conversationId: input.conversationId,
          seq: input.seq,
          userId: me,
          emoji: input.emoji,
          on: input.on,
        },
        now,
      );
    });
  } catch (err) {
    if (!isUniqueViolation(err)) throw err; // the same reaction raced itself
    return;
  }
  await wake(ctx.ports, members);
}

/** Admins pin in groups and channels; both people pin in a direct conversation. */
export async function setPinned(
  ctx: Context,
  me: string,
  ref: MessageRef,
  pinned: boolean,
): Promise<void> {
  const { conversation, membership, row } = await visibleMessage(ctx, me, ref);
  if (conversation.kind !== 'direct' && !ADMINS.includes(membership.role))
    throw new AppError('FORBIDDEN', 'Only admins pin messages');
  if (pinned && row.deleted_at !== null)
    throw new AppError('BAD_REQUEST', 'This message was deleted');
  const db = ctx.ports.db;
  const now = ctx.ports.clock.now();
  const members = await memberIds(db, ref.conversationId);
  const changed = await db.transaction().execute(async (trx) => {
    const existing = await trx
      .selectFrom('pins')
      .select('seq')
      .where('conversation_id', '=', ref.conversationId)
      .where('seq', '=', ref.seq)
      .executeTakeFirst();
    if ((existing !== undefined) === pinned) return false;
    if (pinned) {
      await trx
        .insertInto('pins')
        .values({
          conversation_id: ref.conversationId,
          seq: ref.seq,
          pinned_by: me,
          created_at: now,
        })
        .execute();
    } else {
      await trx
        .deleteFrom('pins')
        .where('conversation_id', '=', ref.conversationId)
        .where('seq', '=', ref.seq)
        .execute();
    }
    await recordEvents(
      trx,
      members,
      { type: 'pin', conversationId: ref.conversationId, seq: ref.seq, pinned, by: me },
      now,
    );
    return true;
  });
  if (changed) await wake(ctx.ports, members);
}

export async function listPins(ctx: Context, me: string, conversationId: string) {
  const { membership } = await requireMember(ctx, conversationId, me);
  const rows = await ctx.ports.db
    .selectFrom('pins')
    .innerJoin('messages', (join) =>
      join
        .onRef('messages.conversation_id', '=', 'pins.conversation_id')
        .onRef('messages.seq', '=', 'pins.seq'),
    )
    .selectAll('messages')
    .where('pins.conversation_id', '=', conversationId)
    .where('pins.seq', '>', Number(membership.joined_seq))
    .orderBy('pins.created_at', 'desc')
    .execute();
  return repo.describeMessages(ctx.ports.db, rows);
}

/**
 * Moves my delivered (and, for `read`, read) position forward, never back. My devices always get
 * the new positions; the other members get my read position only when my `readReceipts`
 * setting is on (else `readSeq: null`), as Signal does. Positions past the newest message are
 * refused.
 */
export async function markReceived(
  ctx: Context,
  me: string,
  input: MessageRef,
  kind: 'delivered' | 'read',
) {
  const { conversation, membership } = await requireMember(ctx, input.conversationId, me);
  if (input.seq > Number(conversation.last_seq))
    throw new AppError('BAD_REQUEST', 'seq is past the newest message');
  const before = { delivered: Number(membership.delivered_seq), read: Number(membership.read_seq) };
  const delivered = Math.max(before.delivered, input.seq);
  const read = kind === 'read' ? Math.max(before.read, input.seq) : before.read;
  if (delivered === before.delivered && read === before.read)
    return { deliveredSeq: delivered, readSeq: read };
  const db = ctx.ports.db;
  const now = ctx.ports.clock.now();
  const [members, settings] = await Promise.all([
    memberIds(db, input.conversationId),
    db.selectFrom('users').select('privacy_read_receipts').where('id', '=', me).executeTakeFirst(),
  ]);
  const shareRead = settings?.privacy_read_receipts !== 0;
  const others = members.filter((id) => id !== me);
  const tellOthers = delivered !== before.delivered || shareRead;
  await db.transaction().execute(async (trx) => {
    // Never backwards, even against a concurrent mark (SQLite has no GREATEST).
    await trx
      .updateTable('conversation_members')
      .set((eb) => ({
        delivered_seq: eb
          .case()
          .when('delivered_seq', '<', delivered)
          .then(delivered)
          .else(eb.ref('delivered_seq'))
          .end(),
        read_seq: eb.case().when('read_seq', '<', read).then(read).else(eb.ref('read_seq')).end(),
      }))
      .where('conversation_id', '=', input.conversationId)
      .where('user_id', '=', me)
      .execute();
    const receipt = {
      type: 'receipt' as const,
      conversationId: input.conversationId,
      userId: me,
      deliveredSeq: delivered,
    };
    await recordEvents(trx, [me], { ...receipt, readSeq: read }, now);
    if (tellOthers)
      await recordEvents(trx, others, { ...receipt, readSeq: shareRead ? read : null }, now);
  });
  await wake(ctx.ports, tellOthers ? members : [me]);
  return { deliveredSeq: delivered, readSeq: read };
}
