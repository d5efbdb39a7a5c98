import type { Transaction } from 'kysely';
import type { DB } from '@mvp/db';
import type { Context } from './context';
import { AppError } from './errors/AppError';

/**
 * A select that, on MySQL, locks what it reads until the transaction ends and reads the latest
 * commit rather than the transaction's snapshot. SQLite runs one transaction at a time (one
 * connection), so there a plain read is already current.
 */
export function locking<Q extends { forUpdate(): Q }>(ctx: Context, query: Q): Q {
  return ctx.ports.dialect === 'mysql' ? query.forUpdate() : query;
}

/**
 * The conversation's row lock, without changing the row: membership and role changes take it
 * too (as an update), and every writer takes it before a message's (the send does too), so they
 * take turns in one order. On MySQL only; SQLite runs one transaction at a time.
 */
export async function lockConversationRow(
  ctx: Context,
  trx: Transaction<DB>,
  conversationId: string,
) {
  const found = await locking(
    ctx,
    trx.selectFrom('conversations').select('id').where('id', '=', conversationId),
  ).executeTakeFirst();
  if (!found) throw new AppError('NOT_FOUND', 'No such conversation');
}
