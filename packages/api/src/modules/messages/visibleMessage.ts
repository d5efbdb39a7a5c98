import type { Transaction } from 'kysely';
import type { TMessage } from '@mvp/contracts';
import type { DB } from '@mvp/db';
import type { Context } from '../../context';
import { AppError } from '../../errors/AppError';
import { findMembership, memberIdsSeeing } from '../conversations/conversations.repo';
import { requireMember } from '../conversations/conversations.service';
import { lockConversationRow, locking } from '../../locking';
import * as repo from './messages.repo';

export type MessageRef = { conversationId: string; seq: number };

/** A message I can see (after I joined), with my membership; NOT_FOUND otherwise. */
export async function visibleMessage(ctx: Context, me: string, ref: MessageRef) {
  const { conversation, membership } = await requireMember(ctx, ref.conversationId, me);
  const row = await repo.findMessage(
    ctx.ports.db,
    ref.conversationId,
    ref.seq,
    ctx.ports.clock.now(),
  );
  if (!row || Number(row.seq) <= Number(membership.joined_seq))
    throw new AppError('NOT_FOUND', 'No such message');
  return { conversation, membership, row };
}

/**
 * My own message as it is now, as the answer to a retry (a resend's client message id, an edit's
 * client edit id): the message, with its reactions only while my history still shows it. A
 * sender removed since (or back with a later join) gets the message but not who reacted, as
 * their stream's backlog does (sync/events.ts). Undefined once purged (a disappearing message).
 */
export async function ownMessageNow(
  ctx: Context,
  me: string,
  ref: MessageRef,
): Promise<TMessage | undefined> {
  // Past its timer too, until purged: a resend's first result is what was sent (its expiresAt
  // tells the device it is gone); refused instead, the resend hit the id's unique key as a 500.
  const view = (await repo.findBySeqsFor(ctx.ports.db, me, [ref], null)).values().next().value;
  if (!view) return undefined;
  if (!view.seen) return repo.toMessage(view.row);
  return (await repo.describeMessages(ctx.ports.db, [view.row]))[0]!;
}

/**
 * The checks made before a change's transaction, made again as its first statements: the
 * message may have been deleted for everyone or purged (disappearing) in between, and a change
 * written after that would put a reaction or a pin back on a tombstone. The row stays locked
 * until the change commits, so a deletion that comes later waits, then takes the change's
 * reaction or pin away with the rest.
 */
export async function assertStillLive(
  ctx: Context,
  trx: Transaction<DB>,
  ref: MessageRef,
): Promise<void> {
  const row = await locking(
    ctx,
    trx
      .selectFrom('messages')
      .select('deleted_at')
      .where('conversation_id', '=', ref.conversationId)
      .where('seq', '=', ref.seq),
  ).executeTakeFirst();
  if (!row) throw new AppError('NOT_FOUND', 'No such message');
  if (row.deleted_at !== null) throw new AppError('BAD_REQUEST', 'This message was deleted');
}

/**
 * A change's first statements: the conversation's lock, then my role and who sees the message
 * (the members who joined before it), read under it. Read before the transaction, both may be
 * stale: a member removed meanwhile would still be told of the change (an edit's ciphertext
 * too), and an admin demoted meanwhile would still act as one. NOT_FOUND once my history no
 * longer shows the message (I left or was removed).
 */
export async function lockedAudience(
  ctx: Context,
  trx: Transaction<DB>,
  ref: MessageRef,
  me: string,
): Promise<{ role: string; members: string[] }> {
  await lockConversationRow(ctx, trx, ref.conversationId);
  const membership = await findMembership(trx, ref.conversationId, me);
  if (!membership || ref.seq <= Number(membership.joined_seq))
    throw new AppError('NOT_FOUND', 'No such message');
  return {
    role: membership.role,
    members: await memberIdsSeeing(trx, ref.conversationId, ref.seq),
  };
}
