import type { Transaction } from 'kysely';
import type { DB } from '@mvp/db';
import type { Context } from '../../context';
import { AppError } from '../../errors/AppError';
import { memberIdsSeeing } from '../conversations/conversations.repo';
import { requireMember } from '../conversations/conversations.service';
import { recordEvents } from '../sync/events';
import * as repo from './messages.repo';
import { ADMINS, assertMayReach, postingContext } from './posting';
import { toldOnce } from './toldOnce';
import { assertStillLive, locking, visibleMessage, type MessageRef } from './visibleMessage';

/**
 * Pinned messages one conversation may have. Every member's client lists them all (listPins has
 * no pages), and a pin is news to every member: without a cap an admin could grow both without
 * bound. Telegram's and WhatsApp's apps show a handful; 50 leaves room for reference channels.
 */
export const MAX_PINS = 50;

/**
 * On MySQL, pins of one conversation take turns under its row lock, so the cap counts what the
 * others pinned just before. The conversation's lock first, the message's after: the order the
 * send and membership changes take them in. (SQLite runs one transaction at a time.)
 */
async function lockConversation(ctx: Context, trx: Transaction<DB>, conversationId: string) {
  const found = await locking(
    ctx,
    trx.selectFrom('conversations').select('id').where('id', '=', conversationId),
  ).executeTakeFirst();
  if (!found) throw new AppError('NOT_FOUND', 'No such conversation');
}

/** Pins a message, unless it is pinned already; CONFLICT at the cap. Answers whether it did. */
async function pin(ctx: Context, trx: Transaction<DB>, ref: MessageRef, me: string, now: number) {
  await lockConversation(ctx, trx, ref.conversationId);
  await assertStillLive(ctx, trx, ref);
  const pinned = await locking(
    ctx,
    trx.selectFrom('pins').select('seq').where('conversation_id', '=', ref.conversationId),
  ).execute();
  if (pinned.some((p) => Number(p.seq) === ref.seq)) return false;
  if (pinned.length >= MAX_PINS)
    throw new AppError('CONFLICT', `At most ${MAX_PINS} pinned messages: unpin one first`);
  await trx
    .insertInto('pins')
    .values({ conversation_id: ref.conversationId, seq: ref.seq, pinned_by: me, created_at: now })
    .execute();
  return true;
}

/**
 * Admins pin in groups and channels; both people pin in a direct conversation. Idempotent both
 * ways: the pin event is recorded only by the call that changed something, so two admins
 * pinning (or unpinning) the same message at once tell the members once.
 */
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
  await toldOnce(ctx, members, async (trx) => {
    if (pinned) {
      if (!(await pin(ctx, trx, ref, me, now))) return false;
    } else {
      // Two unpins at once both find the row; only the one whose delete took it tells.
      const removed = await trx
        .deleteFrom('pins')
        .where('conversation_id', '=', ref.conversationId)
        .where('seq', '=', ref.seq)
        .executeTakeFirst();
      if (Number(removed.numDeletedRows) === 0) return false;
    }
    await recordEvents(
      trx,
      members,
      { type: 'pin', conversationId: ref.conversationId, seq: ref.seq, pinned, by: me },
      now,
    );
    return true;
  });
}

/** The pinned messages my history shows: from after I joined, not those I deleted for me. */
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
    .where((eb) => repo.notHiddenFor(eb, me, conversationId))
    .orderBy('pins.created_at', 'desc')
    .execute();
  return repo.describeMessages(ctx.ports.db, rows);
}
