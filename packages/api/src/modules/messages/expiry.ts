import type { Context } from '../../context';
import { memberIds } from '../conversations/conversations.repo';
import { recordEvents, wake } from '../sync/events';

const BATCH = 500;

/**
 * Disappearing messages: deletes messages past `expires_at` (with their reactions, pins and
 * hidden marks) and tells each conversation's members which seqs went. Returns how many.
 */
export async function purgeExpiredMessages(ctx: Context): Promise<number> {
  const { db, clock } = ctx.ports;
  const now = clock.now();
  const due = await db
    .selectFrom('messages')
    .select(['conversation_id', 'seq'])
    .where('expires_at', '<=', now)
    .orderBy('expires_at')
    .limit(BATCH)
    .execute();
  const byConversation = new Map<string, number[]>();
  for (const { conversation_id: id, seq } of due)
    byConversation.set(id, [...(byConversation.get(id) ?? []), Number(seq)]);
  for (const [conversationId, seqs] of byConversation) {
    const members = await db.transaction().execute(async (trx) => {
      for (const table of ['reactions', 'pins', 'message_hidden', 'messages'] as const) {
        await trx
          .deleteFrom(table)
          .where('conversation_id', '=', conversationId)
          .where('seq', 'in', seqs)
          .execute();
      }
      const everyone = await memberIds(trx, conversationId);
      await recordEvents(
        trx,
        everyone,
        { type: 'messages.removed', conversationId, seqs, reason: 'expired' },
        now,
      );
      return everyone;
    });
    await wake(ctx.ports, members);
  }
  return due.length;
}
