import type { Context } from '../../context';
import { endLiveCallsOf } from '../calls/calls.service';
import { tellPeopleAccountGone } from '../contacts/accountGone';
import { leaveEverything } from '../conversations/conversations.service';
import { announceRevoked } from '../sessions/sessions.service';
import { StreamWrites, wake } from '../sync/events';
import { deleteUserWithAvatarKey, findAvatarState } from './avatar.repo';
import { deleteBlobQuietly } from './avatarBlobs';

// An avatar upload landing between the read and the delete costs one more round; more than a
// few in a row is an account fighting its own deletion, which may try again later.
const ATTEMPTS = 3;

export type DeleteAccountOptions = {
  /** For the inactivity job: delete only while the account is still unused since this time. */
  inactiveBefore?: number;
};

/** Rolls the deletion's transaction back when the row changed under it (see deleteAccount). */
class RowChanged extends Error {}

/**
 * Deletes the account row (devices, sessions and refresh tokens go with it by cascade), tells
 * every instance its sessions ended, then deletes its avatar blob and the pictures of groups
 * that went with it (nobody being left in them). Before the row goes, in the same transaction,
 * the account leaves every conversation (members told, owned groups handed on: see
 * leaveEverything), its live calls end (see endLiveCallsOf), and its contacts and the other side
 * of its pending requests are told (see tellPeopleAccountGone). The row is deleted only while
 * it still points at the avatar read just before, so an upload racing the deletion either lands
 * first (and its blob is deleted here) or finds the row gone (and deletes its own blob);
 * otherwise everything rolls back and it tries again. False when nothing was deleted: the
 * account is gone, became active, or kept changing.
 */
export async function deleteAccount(
  ctx: Context,
  userId: string,
  options: DeleteAccountOptions = {},
): Promise<boolean> {
  const { db } = ctx.ports;
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    const state = await findAvatarState(db, userId);
    if (!state) return false;
    if (options.inactiveBefore !== undefined && state.lastActiveAt >= options.inactiveBefore)
      return false;
    const sessionIds = (
      await db.selectFrom('sessions').select('id').where('user_id', '=', userId).execute()
    ).map((r) => r.id);
    const now = ctx.ports.clock.now();
    let left: Awaited<ReturnType<typeof leaveEverything>> & { toldGone: string[] };
    const calls = new StreamWrites();
    try {
      left = await db.transaction().execute(async (trx) => {
        const departure = await leaveEverything(trx, userId, now);
        await endLiveCallsOf(ctx, trx, userId, now, calls);
        // Before the row: the cascade takes the contacts and requests it reads.
        const toldGone = await tellPeopleAccountGone(ctx, trx, userId, now);
        if (!(await deleteUserWithAvatarKey(trx, userId, state.key, options.inactiveBefore)))
          throw new RowChanged();
        return { ...departure, toldGone };
      });
    } catch (err) {
      if (err instanceof RowChanged) continue;
      throw err;
    }
    // Committed: what is left is tidying and telling, each on its own. Thrown out of the first
    // (Redis down), the rest were skipped: the avatar file went on being served to whoever had
    // its address. The files first; a wake-up or revocation lost here is made up for by the
    // streams' own reads and session checks.
    if (state.key) await deleteBlobQuietly(ctx, state.key);
    for (const key of left.avatarKeys) await deleteBlobQuietly(ctx, key);
    await bestEffort(ctx, 'wake', () => wake(ctx.ports, [...left.woken, ...left.toldGone]));
    await bestEffort(ctx, 'calls', () => calls.wake(ctx.ports));
    if (sessionIds.length)
      await bestEffort(ctx, 'revocation', () => announceRevoked(ctx, sessionIds));
    return true;
  }
  return false;
}

async function bestEffort(ctx: Context, what: string, step: () => Promise<unknown>) {
  try {
    await step();
  } catch (err) {
    ctx.log.warn({ err, what }, 'account deleted; telling it failed');
  }
}
