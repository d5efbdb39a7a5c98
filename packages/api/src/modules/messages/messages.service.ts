import { sql, type Kysely } from 'kysely';
import { newId } from '../../ids';
import type { TMessage } from '@mvp/contracts';
import { isUniqueViolation, retryingDeadlocks, syncTransaction, type DB } from '@mvp/db';
import type { Context } from '../../context';
import { AppError } from '../../errors/AppError';
import { recordForMembers, StreamWrites } from '../sync/events';
import * as repo from './messages.repo';
import { assertMayPost, decodeCiphertext, slowedDown, toPosting, type Posting } from './posting';
import { ownMessageNow } from './visibleMessage';

type Sender = { userId: string; deviceId: string };
export type SendInput = {
  conversationId: string;
  clientMessageId: string;
  contentType: string;
  ciphertext: string;
  replyToSeq?: number;
  forwarded: boolean;
};

/** Everything a send checks before it writes; answers the decoded ciphertext. */
function assertMaySend(ctx: Context, posting: Posting, input: SendInput): Buffer {
  const bytes = decodeCiphertext(ctx, input.ciphertext);
  assertMayPost(ctx, posting);
  if (input.replyToSeq !== undefined && input.replyToSeq > posting.lastSeq)
    throw new AppError('BAD_REQUEST', 'replyToSeq names no message');
  return bytes;
}

/** A Buffer, not any Uint8Array: mysql2 writes only a Buffer as bytes (see writeByProcedure). */
type NewMessage = Omit<repo.MessageRow, 'seq' | 'ciphertext'> & { ciphertext: Buffer };
/** A row of mvp_send_message's answer: the message's seq, a member and their new stream seq. */
type StreamSeq = { seq: number; user_id: string; last_seq: number };

/**
 * The write found the sender no longer a member with the role the send was decided on: decide
 * again on a fresh read. mvp_send_message (migrations T0800, 2026-11-25T0200) refuses with this.
 */
const POSTING_CHANGED = 'posting context changed';
class PostingChanged extends Error {
  constructor() {
    super(POSTING_CHANGED);
  }
}

/** MySQL's ER_BAD_NULL_ERROR and ER_NO_REFERENCED_ROW_2: see writeByProcedure. */
const CONVERSATION_GONE = new Set([1048, 1452]);

/** The write found my slow-mode slot taken by a send decided at the same time. */
const SLOW_MODE = 'slow mode';
class SlowModeTaken extends Error {
  constructor() {
    super(SLOW_MODE);
  }
}

/** What a send's write is told besides the row: see `markPosted`. */
type PostAs = { role: string; postedBefore: number };

/**
 * The send's transaction, in process (SQLite): the conversation's next seq, bumped under its
 * row lock (held to commit, so seqs are gapless and in commit order), the message row, my own
 * read position and slow-mode clock (only while my membership and role are what the send was
 * decided on, and in slow mode only if my slot is still free), then `message.new` on every
 * member's stream, the members read under that lock. mvp_send_message (migrations T0700, T0800,
 * 2026-11-25T0200) does the same on MySQL.
 */
async function writeInProcess(
  db: Kysely<DB>,
  fresh: NewMessage,
  { role, postedBefore }: PostAs,
  writes: StreamWrites,
): Promise<TMessage> {
  return syncTransaction(db, (run) => {
    const seq = repo.nextSeq(run, fresh.conversation_id, fresh.created_at);
    // Deleted since the send was decided (on a cached context): decided again, it is NOT_FOUND.
    if (seq === undefined) throw new PostingChanged();
    const row: repo.MessageRow = { ...fresh, seq };
    repo.insertMessage(run, row);
    const posted = run(
      repo.markPosted,
      row.conversation_id,
      row.sender_id,
      role,
      row.seq,
      row.created_at,
      postedBefore,
    );
    if (!posted.numAffectedRows) {
      const member = run(repo.stillPosting, row.conversation_id, row.sender_id, role);
      throw member.rows.length > 0 ? new SlowModeTaken() : new PostingChanged();
    }
    const message = repo.toMessage(row);
    recordForMembers(
      run,
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
 * (migrations T0700, T0800, 2026-11-25T0200): one round trip instead of nine, which is most of a
 * send's cost there. It answers the seq and each member's new stream seq. The call goes as text,
 * not as a server-side prepared statement: that made sends ~6 % cheaper but (d)'s added p99
 * across two instances worse in forty alternating runs (bench/README, sessions 23 and 24).
 */
async function writeByProcedure(
  db: Kysely<DB>,
  fresh: NewMessage,
  { role, postedBefore }: PostAs,
  writes: StreamWrites,
): Promise<TMessage> {
  let result;
  try {
    result = await sql<
      StreamSeq[]
    >`CALL mvp_send_message(${fresh.conversation_id}, ${fresh.id}, ${fresh.sender_id}, ${fresh.sender_device_id}, ${fresh.client_message_id}, ${fresh.content_type}, ${fresh.ciphertext}, ${fresh.reply_to_seq}, ${fresh.forwarded}, ${fresh.created_at}, ${fresh.expires_at}, ${role}, ${postedBefore})`.execute(
      db,
    );
  } catch (err) {
    if (err instanceof Error && err.message === POSTING_CHANGED) throw new PostingChanged();
    if (err instanceof Error && err.message === SLOW_MODE) throw new SlowModeTaken();
    // The conversation was deleted since the send was decided (on a cached context): the
    // procedure's seq is NULL, or the row's conversation gone. Decided again, it is NOT_FOUND.
    if (CONVERSATION_GONE.has((err as { errno?: number }).errno ?? 0)) throw new PostingChanged();
    throw err;
  }
  // A CALL answers its result set, then the procedure's own status.
  const streams = result.rows[0]!;
  const message = repo.toMessage({ ...fresh, seq: Number(streams[0]!.seq) });
  const event = { type: 'message.new' as const, message };
  for (const s of streams) writes.add(s.user_id, { seq: Number(s.last_seq), event });
  return message;
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
  return first
    ? ownMessageNow(ctx, me, { conversationId: input.conversationId, seq: Number(first.seq) })
    : undefined;
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
  const epoch = ctx.ports.posting.epoch();
  const row = await repo.postingContext(ctx.ports.db, input.conversationId, me);
  if (!row) {
    // No longer a member, but this one got through before: still its answer.
    const resent = await storedBefore(ctx, me, input);
    if (resent) return { resent };
    throw new AppError('NOT_FOUND', 'No such conversation');
  }
  const posting = toPosting(row);
  const { lastPostAt: _, ...cacheable } = posting;
  ctx.ports.posting.set(input.conversationId, me, cacheable, epoch);
  let bytes: ReturnType<typeof assertMaySend>;
  try {
    bytes = assertMaySend(ctx, posting, input);
  } catch (refusal) {
    const resent = await storedBefore(ctx, me, input);
    if (resent) return { resent };
    throw refusal;
  }
  if (slowedDown(posting)) {
    // A resend answers the first message; it must not take the next slot.
    const resent = await storedBefore(ctx, me, input);
    if (resent) return { resent };
  }
  return { posting, bytes };
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
    id: newId(),
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
  // In slow mode the check in `decide` read my last post before the write: two sends decided at
  // once would both pass it. The write itself takes the slot (its row update is conditional on my
  // last post), so only one of them is stored, and a send that fails takes no slot.
  const slowMs = posting.slowModeSeconds * 1000;
  const postAs: PostAs = {
    role: posting.role,
    postedBefore: slowedDown(posting) ? now - slowMs : repo.NO_SLOW_MODE,
  };
  const write = ctx.ports.dialect === 'mysql' ? writeByProcedure : writeInProcess;
  let writes!: StreamWrites; // made afresh by each run of the write
  let message: TMessage;
  try {
    // Two group sends sharing members lock their streams in the same (user id) order, but the
    // database may still pick one as a deadlock victim: that one is simply written again.
    message = await retryingDeadlocks(() => {
      writes = new StreamWrites();
      return write(db, fresh, postAs, writes);
    });
  } catch (err) {
    // The slot went to a send decided just now: wait the whole interval from it.
    if (err instanceof SlowModeTaken)
      throw new AppError('TOO_MANY_REQUESTS', 'Slow mode: wait before sending again', {
        retryAfterMs: slowMs,
      });
    // A resend, or the same client message id racing itself: the first one is the answer.
    if (!isUniqueViolation(err)) throw err;
    const first = await storedBefore(ctx, sender.userId, input);
    if (!first) throw err;
    return first;
  }
  await writes.wake(ctx.ports);
  return message;
}
