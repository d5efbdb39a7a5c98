import type { Kysely } from 'kysely';
import type { TCall } from '@mvp/contracts';
import type { DB } from '@mvp/db';
import type { Context } from '../../context';
import { myCall, toCall } from './calls.service';

export async function getCall(ctx: Context, me: string, id: string): Promise<TCall> {
  return toCall(await myCall(ctx, me, id), me);
}

/**
 * The newest `limit` of my calls on one side (made or taken) older than `before`, read in order
 * from that side's (side, id) index. An OR of the two sides would read and sort all my calls,
 * which are never deleted, for every page.
 */
export function callsOnSide(
  db: Kysely<DB>,
  side: 'caller_id' | 'callee_id',
  me: string,
  before: string | undefined,
  limit: number,
) {
  let query = db.selectFrom('calls').selectAll().where(side, '=', me);
  if (before) query = query.where('id', '<', before);
  return query.orderBy('id', 'desc').limit(limit);
}

/** My calls, newest first (ids are UUIDv7, so they sort by time), paged by `before`. */
export async function callHistory(
  ctx: Context,
  me: string,
  input: { before?: string; limit: number },
) {
  const db = ctx.ports.db;
  // One more than a page from each side: the page and whether there is more are among them.
  const made = await callsOnSide(db, 'caller_id', me, input.before, input.limit + 1).execute();
  const taken = await callsOnSide(db, 'callee_id', me, input.before, input.limit + 1).execute();
  // A call to oneself would be on both sides (startCall refuses one): listed once. Ids are
  // lower-case UUIDs, so JavaScript's order is the database's.
  const seen = new Set(made.map((r) => r.id));
  const rows = [...made, ...taken.filter((r) => !seen.has(r.id))]
    .sort((x, y) => (x.id < y.id ? 1 : x.id > y.id ? -1 : 0))
    .slice(0, input.limit + 1);
  return {
    calls: rows.slice(0, input.limit).map((r) => toCall(r, me)),
    more: rows.length > input.limit,
  };
}
