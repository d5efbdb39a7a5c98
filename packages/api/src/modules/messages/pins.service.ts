import type { Transaction } from 'kysely';
import type { DB } from '@mvp/db';
import type { Context } from '../../context';
import { AppError } from '../../errors/AppError';
import { requireMember } from '../conversations/conversations.service';
import { recordEvents } from '../sync/events';
import * as repo from './messages.repo';
import { ADMINS, assertMayReach, postingContext } from './posting';
import { locking } from '../../locking';
import { toldOnce } from './toldOnce';
import { assertStillLive, lockedAudience, visibleMessage, type MessageRef } from './visibleMessage';

/**
 * Pinned messages one conversation may have. Every member's client lists them all (listPins has
 * no pages), and a pin is news to every member: without a cap an admin could grow both without
 * bound. Telegram's and WhatsApp's apps show a handful; 50 leaves room for reference channels.
 */
export const MAX_PINS = 50;

/**
 * Pins a message, unless it is pinned already; CONFLICT at the cap. Answers whether it did. On
 * MySQL, pins of one conversation take turns under its row lock (taken by lockedAudience), so
 * the cap counts what the others pinned just before.
 */
async function pin(ctx: Context, trx: Transaction<DB>, ref: MessageRef, me: string, now: number) {
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

function assertAdminRole(role: string): void {
  if (!ADMINS.includes(role)) throw new AppError('FORBIDDEN', 'Only admins pin messages');
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
  if (conversation.kind !== 'direct') assertAdminRole(membership.role);
  assertMayReach(await postingContext(ctx, ref.conversationId, me));
  if (pinned && row.deleted_at !== null)
    throw new AppError('BAD_REQUEST', 'This message was deleted');
  const now = ctx.ports.clock.now();
  await toldOnce(ctx, async (trx) => {
    // Pins, like the message, are shown only to members who joined before it (listPins). Who
    // they are, and whether I am still an admin, as of now: see lockedAudience.
    const { role, members } = await lockedAudience(ctx, trx, ref, me);
    if (conversation.kind !== 'direct') assertAdminRole(role);
    if (pinned) {
      if (!(await pin(ctx, trx, ref, me, now))) return undefined;
    } else {
      // Two unpins at once both find the row; only the one whose delete took it tells.
      const removed = await trx
        .deleteFrom('pins')
        .where('conversation_id', '=', ref.conversationId)
        .where('seq', '=', ref.seq)
        .executeTakeFirst();
      if (Number(removed.numDeletedRows) === 0) return undefined;
    }
    await recordEvents(
      trx,
      members,
      { type: 'pin', conversationId: ref.conversationId, seq: ref.seq, pinned, by: me },
      now,
    );
    return members;
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
