import type { Transaction } from 'kysely';
import { isUniqueViolation, type DB } from '@mvp/db';
import type { Context } from '../../context';
import { wake } from '../sync/events';

/**
 * A change to a message that its members are told of once: `change` runs in one transaction,
 * records the event itself and answers whether it changed anything (false: already so, tell
 * nobody). The members are woken only then. A unique violation means a concurrent call made the
 * same change first: what was asked holds, and that call told them.
 */
export async function toldOnce(
  ctx: Context,
  members: string[],
  change: (trx: Transaction<DB>) => Promise<boolean>,
): Promise<void> {
  let changed: boolean;
  try {
    changed = await ctx.ports.db.transaction().execute(change);
  } catch (err) {
    if (!isUniqueViolation(err)) throw err;
    return;
  }
  if (changed) await wake(ctx.ports, members);
}
