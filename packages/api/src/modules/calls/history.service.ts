import type { TCall } from '@mvp/contracts';
import type { Context } from '../../context';
import { myCall, toCall } from './calls.service';

export async function getCall(ctx: Context, me: string, id: string): Promise<TCall> {
  return toCall(await myCall(ctx, me, id), me);
}

/** My calls, newest first (ids are UUIDv7, so they sort by time), paged by `before`. */
export async function callHistory(
  ctx: Context,
  me: string,
  input: { before?: string; limit: number },
) {
  let query = ctx.ports.db
    .selectFrom('calls')
    .selectAll()
    .where((eb) => eb.or([eb('caller_id', '=', me), eb('callee_id', '=', me)]));
  if (input.before) query = query.where('id', '<', input.before);
  const rows = await query
    .orderBy('id', 'desc')
    .limit(input.limit + 1)
    .execute();
  return {
    calls: rows.slice(0, input.limit).map((r) => toCall(r, me)),
    more: rows.length > input.limit,
  };
}
