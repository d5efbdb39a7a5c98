import type { Transaction, Updateable } from 'kysely';
import type { TMessage } from '@mvp/contracts';
import { isUniqueViolation, type DB, type MessagesTable } from '@mvp/db';
import type { Context } from '../../context';
import { AppError } from '../../errors/AppError';
import { memberIdsSeeing } from '../conversations/conversations.repo';
import { requireMember } from '../conversations/conversations.service';
import { recordEvents, wake } from '../sync/events';
import * as repo from './messages.repo';
import { ADMINS, assertMayPost, assertMayReach, decodeCiphertext, postingContext } from './posting';

export type MessageRef = { conversationId: string; seq: number };

/** Distinct emoji one member may put on one message. */
const MAX_REACTIONS_PER_USER = 20;

/** A message I can see (after I joined), with my membership; NOT_FOUND otherwise. */
async function visibleMessage(ctx: Context, me: string, ref: MessageRef) {
  const { conversation, membership } = await requireMember(ctx, ref.conversationId, me);
  const row = await repo.findMessage(ctx.ports.db, ref.conversationId, ref.seq);
  if (!row || Number(row.seq) <= Number(membership.joined_seq))
    throw new AppError('NOT_FOUND', 'No such message');
  return { conversation, membership, row };
}

/**
 * Applies a change to one message and tells, with `message.updated`, every member whose history
 * shows it. Not those who joined after it: the event carries the message, and an edit is sealed
 * under the current sender key, which they hold.
 */
async function updateAndTell(
  ctx: Context,
  ref: MessageRef,
  change: Updateable<MessagesTable>,
  extra?: (trx: Transaction<DB>) => Promise<void>,
): Promise<TMessage> {
  const now = ctx.ports.clock.now();
  const members = await memberIdsSeeing(ctx.ports.db, ref.conversationId, ref.seq);
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
  // Not to members who joined after the message: their history does not show it, nor who reacts.
  const members = await memberIdsSeeing(db, input.conversationId, input.seq);
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
  // Pins, like the message, are shown only to members who joined before it (listPins).
  const members = await memberIdsSeeing(db, ref.conversationId, ref.seq);
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
