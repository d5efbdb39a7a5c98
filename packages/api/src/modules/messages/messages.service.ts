import { sql, type Kysely, type Transaction, type Updateable } from 'kysely';
import { uuidv7 } from 'uuidv7';
import type { TMessage } from '@mvp/contracts';
import { isDeadlock, isUniqueViolation, type DB, type MessagesTable } from '@mvp/db';
import type { Context } from '../../context';
import type { CachedPosting } from '../../ports';
import { AppError } from '../../errors/AppError';
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

function decodeCiphertext(ctx: Context, ciphertext: string): Buffer {
  const bytes = Buffer.from(ciphertext, 'base64');
  const max = ctx.settings.messaging.maxCiphertextBytes;
  if (bytes.length > max)
    throw new AppError('PAYLOAD_TOO_LARGE', `Ciphertext larger than ${max} bytes`);
  return bytes;
}

type PostingRow = NonNullable<Awaited<ReturnType<typeof repo.postingContext>>>;
/** What a post is decided on; `lastPostAt` only when read fresh (the cache leaves it out). */
type Posting = CachedPosting & { lastPostAt: number | null };

function toPosting(row: PostingRow): Posting {
  return {
    kind: row.kind,
    role: row.role,
    slowModeSeconds: Number(row.slow_mode_seconds),
    disappearSeconds: Number(row.disappear_seconds),
    blocked: row.kind === 'direct' && Boolean(Number(row.blocked)),
    lastSeq: Number(row.last_seq),
    lastPostAt: row.last_post_at === null ? null : Number(row.last_post_at),
  };
}

/** The conversation and my membership, with what posting checks; NOT_FOUND if not a member. */
export async function postingContext(
  ctx: Context,
  conversationId: string,
  me: string,
): Promise<Posting> {
  const row = await repo.postingContext(ctx.ports.db, conversationId, me);
  if (!row) throw new AppError('NOT_FOUND', 'No such conversation');
  return toPosting(row);
}

/**
 * What any change the other members see needs (reactions, pins; posting adds more): never from a
 * restricted (read-only) member, never across a block in a direct conversation.
 */
export function assertMayReach(posting: CachedPosting): void {
  if (posting.role === 'restricted') throw new AppError('FORBIDDEN', 'You can only read here');
  if (posting.blocked) throw new AppError('FORBIDDEN', 'You cannot message this user');
}

/** Who may write into the conversation (messages, typing): in a channel only its admins. */
export function assertMaySpeak(posting: CachedPosting): void {
  assertMayReach(posting);
  if (posting.kind === 'channel' && !ADMINS.includes(posting.role))
    throw new AppError('FORBIDDEN', 'Only admins post in a channel');
}

/** Slow mode spaces out one member's messages; admins are exempt. */
const slowedDown = (posting: CachedPosting): boolean =>
  posting.slowModeSeconds > 0 && !ADMINS.includes(posting.role);

/** Who may post: see assertMaySpeak. In slow mode, not before the wait (answered). */
function assertMayPost(ctx: Context, posting: Posting): void {
  assertMaySpeak(posting);
  if (slowedDown(posting) && posting.lastPostAt !== null) {
    const waitMs = posting.lastPostAt + posting.slowModeSeconds * 1000 - ctx.ports.clock.now();
    if (waitMs > 0)
      throw new AppError('TOO_MANY_REQUESTS', 'Slow mode: wait before sending again', {
        retryAfterMs: waitMs,
      });
  }
}

/** Everything a send checks before it writes; answers the decoded ciphertext. */
function assertMaySend(ctx: Context, posting: Posting, input: SendInput): Buffer {
  const bytes = decodeCiphertext(ctx, input.ciphertext);
  assertMayPost(ctx, posting);
  if (input.replyToSeq !== undefined && input.replyToSeq > posting.lastSeq)
    throw new AppError('BAD_REQUEST', 'replyToSeq names no message');
  return bytes;
}

type NewMessage = Omit<repo.MessageRow, 'seq'>;
/** A row of mvp_send_message's answer: the message's seq, a member and their new stream seq. */
type StreamSeq = { seq: number; user_id: string; last_seq: number };

/**
 * The write found the sender no longer a member with the role the send was decided on: decide
 * again on a fresh read. mvp_send_message (migration T0800) refuses with this message.
 */
const POSTING_CHANGED = 'posting context changed';
class PostingChanged extends Error {
  constructor() {
    super(POSTING_CHANGED);
  }
}

/**
 * The send's transaction, in process (SQLite): the conversation's next seq, bumped under its
 * row lock (held to commit, so seqs are gapless and in commit order), the message row, my own
 * read position and slow-mode clock (only while my membership and role are what the send was
 * decided on), then `message.new` on every member's stream, the members read under that lock.
 * mvp_send_message (migrations T0700, T0800) does the same on MySQL.
 */
async function writeInProcess(
  db: Kysely<DB>,
  fresh: NewMessage,
  role: string,
  writes: StreamWrites,
): Promise<TMessage> {
  return db.transaction().execute(async (trx) => {
    const seq = await repo.nextSeq(trx, fresh.conversation_id, fresh.created_at);
    if (seq === undefined) throw new Error('conversation vanished during a send');
    const row: repo.MessageRow = { ...fresh, seq };
    await repo.insertMessage(trx, row);
    const posted = await repo.markPosted(
      trx,
      row.conversation_id,
      row.sender_id,
      role,
      row.seq,
      row.created_at,
    );
    if (!posted.numAffectedRows) throw new PostingChanged();
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
 * (migrations T0700, T0800): one round trip instead of nine, which is most of a send's cost
 * there. It answers the seq and each member's new stream seq.
 */
async function writeByProcedure(
  db: Kysely<DB>,
  fresh: NewMessage,
  role: string,
  writes: StreamWrites,
): Promise<TMessage> {
  let result;
  try {
    result = await sql<
      StreamSeq[]
    >`CALL mvp_send_message(${fresh.conversation_id}, ${fresh.id}, ${fresh.sender_id}, ${fresh.sender_device_id}, ${fresh.client_message_id}, ${fresh.content_type}, ${fresh.ciphertext}, ${fresh.reply_to_seq}, ${fresh.forwarded}, ${fresh.created_at}, ${fresh.expires_at}, ${role})`.execute(
      db,
    );
  } catch (err) {
    if (err instanceof Error && err.message === POSTING_CHANGED) throw new PostingChanged();
    throw err;
  }
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

/** The message this client message id already stored, if any (a resend). */
async function storedBefore(
  ctx: Context,
  me: string,
  input: SendInput,
): Promise<TMessage | undefined> {
  const first = await repo.findByClientId(
    ctx.ports.db,
    input.conversationId,
    me,
    input.clientMessageId,
  );
  return first ? firstSent(ctx, input.conversationId, Number(first.seq)) : undefined;
}

type Decision = { posting: Posting; bytes: Buffer } | { resent: TMessage };

/**
 * Whether I may send this, and on what. From the posting cache when it has my entry, except in
 * slow mode (which needs my last post time); a send the cached entry would refuse is decided
 * again on a fresh read, so a refusal never rests on the cache. A resend of a message already
 * stored answers that message even where a new one would be refused (slow mode, left since).
 * The write verifies membership and role itself (see writeInProcess), so a stale entry can
 * only be stale in what a block or a setting changed, which this instance forgets at once.
 */
async function decide(
  ctx: Context,
  me: string,
  input: SendInput,
  useCache: boolean,
): Promise<Decision> {
  const cached = useCache ? ctx.ports.posting.get(input.conversationId, me) : undefined;
  if (cached && !slowedDown(cached)) {
    const posting = { ...cached, lastPostAt: null };
    try {
      return { posting, bytes: assertMaySend(ctx, posting, input) };
    } catch {
      // Decided again below, on what the database says now.
    }
  }
  const row = await repo.postingContext(ctx.ports.db, input.conversationId, me);
  if (!row) {
    // No longer a member, but this one got through before: still its answer.
    const resent = await storedBefore(ctx, me, input);
    if (resent) return { resent };
    throw new AppError('NOT_FOUND', 'No such conversation');
  }
  const posting = toPosting(row);
  const { lastPostAt: _, ...cacheable } = posting;
  ctx.ports.posting.set(input.conversationId, me, cacheable);
  try {
    const bytes = assertMaySend(ctx, posting, input);
    if (slowedDown(posting)) {
      // A resend answers the first message; it must not take the next slot.
      const resent = await storedBefore(ctx, me, input);
      if (resent) return { resent };
      await claimSlowModeSlot(ctx, input.conversationId, me, posting);
    }
    return { posting, bytes };
  } catch (refusal) {
    const resent = await storedBefore(ctx, me, input);
    if (resent) return { resent };
    throw refusal;
  }
}

/**
 * In slow mode the check above read my last post before the write: two sends decided at once
 * would both pass it. The slot is therefore taken first, atomically; a loser lost it to a send
 * decided just now, so it waits the whole interval. (A send that then fails leaves the slot
 * taken: the member waits once for nothing. So does the rare resend racing its own first copy.)
 */
async function claimSlowModeSlot(
  ctx: Context,
  conversationId: string,
  me: string,
  posting: Posting,
): Promise<void> {
  const slowMs = posting.slowModeSeconds * 1000;
  const now = ctx.ports.clock.now();
  if (await repo.claimPostSlot(ctx.ports.db, conversationId, me, now, now - slowMs)) return;
  throw new AppError('TOO_MANY_REQUESTS', 'Slow mode: wait before sending again', {
    retryAfterMs: slowMs,
  });
}

/**
 * Stores an opaque ciphertext as the conversation's next message. The seq comes from the
 * conversation row, bumped inside the writing transaction, so it is gapless and in commit order;
 * the same transaction appends `message.new` to every member's stream. A resend with the same
 * client message id answers the message stored the first time and writes nothing (the unique
 * client message id refuses the second row, and the whole transaction with it). The procedure
 * has spent the account's send budget already (its `accountBudget`, trpc.ts).
 */
export async function sendMessage(
  ctx: Context,
  sender: Sender,
  input: SendInput,
): Promise<TMessage> {
  const me = sender.userId;
  // The second decision reads fresh: the write found my membership or role changed since.
  for (let attempt = 1; ; attempt++) {
    const decision = await decide(ctx, me, input, attempt === 1);
    if ('resent' in decision) return decision.resent;
    try {
      return await store(ctx, sender, input, decision);
    } catch (err) {
      if (!(err instanceof PostingChanged) || attempt === 3) throw err;
      ctx.ports.posting.forget([input.conversationId]);
    }
  }
}

/** The write of a decided send, retried on a deadlock; a resend answers the first message. */
async function store(
  ctx: Context,
  sender: Sender,
  input: SendInput,
  { posting, bytes }: { posting: Posting; bytes: Buffer },
): Promise<TMessage> {
  const db = ctx.ports.db;
  const now = ctx.ports.clock.now();
  // The timer as read for this send: a change racing it may apply from the next one.
  const timer = posting.disappearSeconds;
  const fresh: NewMessage = {
    conversation_id: input.conversationId,
    id: uuidv7(),
    sender_id: sender.userId,
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
        message = await write(db, fresh, posting.role, writes);
        break;
      } catch (err) {
        if (!isDeadlock(err) || attempt === 3) throw err;
        writes = new StreamWrites();
      }
    }
  } catch (err) {
    // A resend, or the same client message id racing itself: the first one is the answer.
    if (!isUniqueViolation(err)) throw err;
    const first = await storedBefore(ctx, sender.userId, input);
    if (!first) throw err;
    return first;
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
  assertMayReach(await postingContext(ctx, input.conversationId, me));
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
  assertMayReach(await postingContext(ctx, ref.conversationId, me));
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
