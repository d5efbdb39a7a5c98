import type { Transaction } from 'kysely';
import { isUniqueViolation, retryingDeadlocks, type DB } from '@mvp/db';
import type { Context } from '../../context';
import { wake } from '../sync/events';

/**
 * A change to a message that its members are told of once: `change` runs in one transaction,
 * records the event itself and answers the members it told (undefined: already so, tell
 * nobody), read inside the transaction (see lockedAudience). They are woken once it commits. A
 * unique violation means a concurrent call made the same change first: what was asked holds,
 * and that call told them.
 */
export async function toldOnce(
  ctx: Context,
  change: (trx: Transaction<DB>) => Promise<readonly string[] | undefined>,
): Promise<void> {
  let told: readonly string[] | undefined;
  try {
    // It takes the conversation's lock, then members' streams; an account's deletion takes
    // conversations' locks one by one with streams between: a deadlock victim runs again.
    told = await retryingDeadlocks(() => ctx.ports.db.transaction().execute(change));
  } catch (err) {
    if (!isUniqueViolation(err)) throw err;
    return;
  }
  if (told) await wake(ctx.ports, told);
}
