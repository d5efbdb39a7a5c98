import type { Context } from '../../context';
import { recordEvents, wake, type DurableEvent } from '../sync/events';
import { locking } from '../../locking';

const BATCH = 500;

/**
 * Disappearing messages: deletes messages past `expires_at` (with their reactions, pins and
 * hidden marks) and tells each conversation's members which seqs went: each member only those
 * their history shows (sent after they joined), and a member who saw none of them nothing.
 * Returns how many.
 */
export async function purgeExpiredMessages(ctx: Context, signal?: AbortSignal): Promise<number> {
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
  let handled = 0;
  for (const [conversationId, due] of byConversation) {
    // Lock lost (see runLocked): the rest is left to the next run.
    if (signal?.aborted) break;
    const told = await db.transaction().execute(async (trx) => {
      // Only what is still there, under its lock: a run that outlived its job lock and overlaps
      // another instance's (or a delete for everyone) must not tell the same removal twice.
      const seqs = (
        await locking(
          ctx,
          trx
            .selectFrom('messages')
            .select('seq')
            .where('conversation_id', '=', conversationId)
            .where('seq', 'in', due),
        ).execute()
      ).map((r) => Number(r.seq));
      if (seqs.length === 0) return [];
      for (const table of [
        'reactions',
        'pins',
        'message_hidden',
        'message_edits',
        'messages',
      ] as const) {
        await trx
          .deleteFrom(table)
          .where('conversation_id', '=', conversationId)
          .where('seq', 'in', seqs)
          .execute();
      }
      // Members who saw the same seqs share one event.
      const bySeen = new Map<string, DurableEvent>();
      const eventOf = new Map<string, DurableEvent>();
      const members = await trx
        .selectFrom('conversation_members')
        .select(['user_id', 'joined_seq'])
        .where('conversation_id', '=', conversationId)
        .execute();
      for (const member of members) {
        const seen = seqs.filter((seq) => seq > Number(member.joined_seq));
        if (seen.length === 0) continue;
        const key = seen.join(',');
        const event = bySeen.get(key) ?? {
          type: 'messages.removed',
          conversationId,
          seqs: seen,
          reason: 'expired',
        };
        bySeen.set(key, event);
        eventOf.set(member.user_id, event);
      }
      const userIds = [...eventOf.keys()];
      await recordEvents(trx, userIds, (userId) => eventOf.get(userId)!, now);
      return userIds;
    });
    await wake(ctx.ports, told);
    handled += due.length;
  }
  return handled;
}
