import type { Transaction } from 'kysely';
import type { DB } from '@mvp/db';
import type { Context } from '../../context';
import { locking } from '../../locking';
import { recordEvents, type DurableEvent } from '../sync/events';
import { contactRemoved, requestCancelled } from './peopleEvents';

/**
 * Before a deleted account's row goes (its contacts and requests go with it by cascade), tells
 * the people on the other side, inside the deletion's transaction, what removing each contact
 * and cancelling each request would have told them: otherwise their clients keep a contact or a
 * request that no longer exists. A request the account received is withdrawn alike (cancelled,
 * not declined: nobody said no). Answers whom to wake once committed.
 */
export async function tellPeopleAccountGone(
  ctx: Context,
  trx: Transaction<DB>,
  userId: string,
  now: number,
): Promise<string[]> {
  // Locking reads (MySQL): the rows as committed now, and none added before the cascade, not
  // the transaction's older snapshot (a request or an accept committed since would go untold).
  const contacts = await locking(
    ctx,
    trx.selectFrom('contacts').select('contact_id').where('user_id', '=', userId),
  ).execute();
  const requests = await locking(
    ctx,
    trx
      .selectFrom('contact_requests')
      .select(['id', 'from_user_id', 'to_user_id'])
      .where((eb) => eb.or([eb('from_user_id', '=', userId), eb('to_user_id', '=', userId)])),
  ).execute();
  let pending: { other: string; event: DurableEvent }[] = [
    ...contacts.map((r) => ({ other: r.contact_id, event: contactRemoved(userId) })),
    ...requests.map((r) => ({
      other: r.from_user_id === userId ? r.to_user_id : r.from_user_id,
      event: requestCancelled(r.id),
    })),
  ];
  const told = [...new Set(pending.map((p) => p.other))];
  // All in one write to the streams (locked in one order, as every writer does), except that a
  // person gets one event per write: rarely, a contact also has a request, or one each way.
  while (pending.length) {
    const round = new Map<string, DurableEvent>();
    const later: typeof pending = [];
    for (const p of pending) {
      if (round.has(p.other)) later.push(p);
      else round.set(p.other, p.event);
    }
    await recordEvents(trx, [...round.keys()], (other) => round.get(other)!, now);
    pending = later;
  }
  return told;
}
