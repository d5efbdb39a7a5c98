import type { TSyncEvent } from '@mvp/contracts';
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
): Promise<{ events: { id: string; event: TSyncEvent }[]; cursor: string }> {
  const bounds = await streamBounds(ctx.ports.db, device.userId);
  if (!bounds) throw new AppError('UNAUTHORIZED', 'Session ended');
  const { cursor, resync } = startOf(bounds, after);
  if (resync)
    return { events: [{ id: String(cursor), event: { type: 'resync' } }], cursor: String(cursor) };
  const rows = await readEvents(ctx.ports.db, device.userId, device.deviceId, cursor, limit);
  const head = await prunedPast(ctx, device.userId, cursor, rows);
  if (head !== null)
    return { events: [{ id: String(head), event: { type: 'resync' } }], cursor: String(head) };
  const events = (await hydrate(ctx.ports.db, device.userId, rows)).map(({ seq, event }) => ({
    id: String(seq),
    event,
  }));
  return { events, cursor: String(rows.at(-1)?.seq ?? cursor) };
}
