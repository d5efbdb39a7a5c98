import type { TSyncEvent } from '@mvp/contracts';
import { readPage } from '../../answerBytes';
import type { Context } from '../../context';
import { AppError } from '../../errors/AppError';
import { hydrate } from './events';
import { readEvents, streamBounds } from './stream.repo';
import { prunedPast, startOf } from './syncStream';

/** One page of the durable stream after `after` (from now when absent); `resync` as live. */
export async function pollEvents(
  ctx: Context,
  device: { userId: string; deviceId: string },
  after: string | undefined,
  limit: number,
): Promise<{ events: { id: string; event: TSyncEvent }[]; cursor: string; more: boolean }> {
  const bounds = await streamBounds(ctx.ports.db, device.userId);
  if (!bounds) throw new AppError('UNAUTHORIZED', 'Session ended');
  const { cursor, resync } = startOf(bounds, after);
  const resyncAt = (at: number) => ({
    events: [{ id: String(at), event: { type: 'resync' as const } }],
    cursor: String(at),
    more: false,
  });
  if (resync) return resyncAt(cursor);
  let head: number | null = null;
  const { items, more } = await readPage<{ seq: number; event: TSyncEvent | null }>(
    ctx.answerBytes,
    limit,
    async (n, last) => {
      const rows = await readEvents(
        ctx.ports.db,
        device.userId,
        device.deviceId,
        last?.seq ?? cursor,
        n,
      );
      if (!last && (head = await prunedPast(ctx, device.userId, cursor, rows)) !== null) return [];
      // Every row, the ones hydrate passes over too (null): the cursor moves past them as well.
      const events = new Map(
        (await hydrate(ctx.ports.db, device.userId, rows, ctx.ports.clock.now())).map((e) => [
          e.seq,
          e.event,
        ]),
      );
      return rows.map(({ seq }) => ({ seq, event: events.get(seq) ?? null }));
    },
    ({ event }) => (event ? JSON.stringify(event).length : 0),
  );
  if (head !== null) return resyncAt(head);
  const events = items.flatMap(({ seq, event }) => (event ? [{ id: String(seq), event }] : []));
  return { events, cursor: String(items.at(-1)?.seq ?? cursor), more };
}
