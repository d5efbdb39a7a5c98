import { setImmediate as turn } from 'node:timers/promises';
import type { DB } from '@mvp/db';
import type { Kysely } from 'kysely';
import type { Context } from '../../context';

/** Rows read per batch: each batch is a short stretch of work, however large the backlog. */
const BATCH = 1000;

/**
 * Per stream, the highest seq among the `limit` oldest events written before `cutoff`, and how
 * many of them it holds. The oldest rows are picked first through the `created_at` index: with
 * `WHERE created_at < ? GROUP BY user_id` on the table itself, SQLite's planner walks the primary
 * key instead (grouping without a sort) and reads every event, on the embedded server's only
 * thread, every jobs interval, even when none is stale (100 ms and more once a few hundred
 * thousand events are kept).
 */
export function staleStreams(db: Kysely<DB>, cutoff: number, limit = BATCH) {
  return db
    .selectFrom((eb) =>
      eb
        .selectFrom('user_events')
        .select(['user_id', 'seq'])
        .where('created_at', '<', cutoff)
        .orderBy('created_at')
        .limit(limit)
        .as('oldest'),
    )
    .select(['user_id', (eb) => eb.fn.max('seq').as('upTo'), (eb) => eb.fn.countAll().as('rows')])
    .groupBy('user_id');
}

/**
 * Deletes stream events (and unacknowledged envelopes) older than the retention window, oldest
 * first, a batch at a time, and moves each stream's `first_seq` past what was deleted: a device
 * whose cursor is older is then told `resync` instead of silently missing events. Returns how
 * many streams were trimmed.
 */
export async function pruneStreams(ctx: Context, signal?: AbortSignal): Promise<number> {
  const { db, clock } = ctx.ports;
  const cutoff = clock.now() - ctx.settings.messaging.retentionDays * 24 * 3600 * 1000;
  const trimmed = new Set<string>();
  for (;;) {
    if (signal?.aborted) return trimmed.size;
    const stale = await staleStreams(db, cutoff).execute();
    for (const { user_id: userId, upTo } of stale) {
      // Lock lost (see runLocked): the rest is left to the next run.
      if (signal?.aborted) return trimmed.size;
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
      trimmed.add(userId);
    }
    // Every row read was deleted (each is at or below its stream's upTo): fewer than a batch
    // means none is left.
    if (stale.reduce((rows, s) => rows + Number(s.rows), 0) < BATCH) return trimmed.size;
    // On the embedded backend every statement runs on the event loop's thread, and these
    // promises settle without giving it back: requests get their turn between batches.
    await turn();
  }
}
