import type { Context } from '../../context';
import { AppError } from '../../errors/AppError';
import { requireMember } from '../conversations/conversations.service';
import { recordEvents, wake } from '../sync/events';
import type { MessageRef } from './changes.service';
import * as repo from './messages.repo';

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

/**
 * Moves my delivered (and, for `read`, read) position forward, never back. My devices always get
 * the new positions. Of the other members, those whose messages the move passes get them, as
 * Signal sends a receipt to the sender: my read position only when my `readReceipts` setting is
 * on (else `readSeq: null`, and a move of my read position alone tells them nothing). Telling
 * every member instead cost each mark one event per member, so a message that everyone in a
 * 1000-member group reads cost about a million stream rows. Positions past the newest message
 * are refused.
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
  const settings = await db
    .selectFrom('users')
    .select('privacy_read_receipts')
    .where('id', '=', me)
    .executeTakeFirst();
  const shareRead = settings?.privacy_read_receipts !== 0;
  // The seqs whose senders learn something: those my delivered position passed, and those my
  // read position passed if I share it. (A read move past messages already delivered leaves
  // the delivered position where it was: the range ends at the new read position then.)
  const passed = {
    after: shareRead && read !== before.read ? before.read : before.delivered,
    upTo: delivered !== before.delivered ? delivered : read,
  };
  const told = await db.transaction().execute(async (trx) => {
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
    const senders = await repo.sendersBetween(
      trx,
      input.conversationId,
      me,
      passed.after,
      passed.upTo,
    );
    if (senders.length > 0)
      await recordEvents(trx, senders, { ...receipt, readSeq: shareRead ? read : null }, now);
    return senders;
  });
  await wake(ctx.ports, [me, ...told]);
  return { deliveredSeq: delivered, readSeq: read };
}
