import type { Context } from '../../context';

const BATCH = 1000;

/**
 * Deletes stream events (and unacknowledged envelopes) older than the retention window, oldest
 * users' backlogs first, and moves each stream's `first_seq` past what was deleted: a device whose
 * cursor is older is then told `resync` instead of silently missing events. Returns how many
 * streams were trimmed.
 */
export async function pruneStreams(ctx: Context, signal?: AbortSignal): Promise<number> {
  const { db, clock } = ctx.ports;
  const cutoff = clock.now() - ctx.settings.messaging.retentionDays * 24 * 3600 * 1000;
  const stale = await db
    .selectFrom('user_events')
    .select(['user_id', (eb) => eb.fn.max('seq').as('upTo')])
    .where('created_at', '<', cutoff)
    .groupBy('user_id')
    .limit(BATCH)
    .execute();
  let trimmed = 0;
  for (const { user_id: userId, upTo } of stale) {
    // Lock lost (see runLocked): the rest is left to the next run.
    if (signal?.aborted) break;
    const seq = Number(upTo);
    await db.transaction().execute(async (trx) => {
      await trx
        .updateTable('user_streams')
        .set({ first_seq: seq + 1 })
        .where('user_id', '=', userId)
        .where('first_seq', '<=', seq)
        .execute();
      await trx
        .deleteFrom('user_events')
        .where('user_id', '=', userId)
        .where('seq', '<=', seq)
        .execute();
    });
    trimmed += 1;
  }
  return trimmed;
}
