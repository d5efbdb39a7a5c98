import type { Context } from '../../context';
import { AppError } from '../../errors/AppError';
import { recordEvents } from '../sync/events';
import { assertMayReach, postingContext } from './posting';
import { locking } from '../../locking';
import { toldOnce } from './toldOnce';
import { assertStillLive, lockedAudience, visibleMessage, type MessageRef } from './visibleMessage';

/** Distinct emoji one member may put on one message. */
const MAX_REACTIONS_PER_USER = 20;

/**
 * Adds or removes one emoji of mine on a message; a set per member, so repeats change nothing.
 * My reactions are counted for the cap inside the transaction, under the message's row lock
 * (assertStillLive): reactions to one message take turns on MySQL, so several of mine at once
 * cannot each count the same 19 and all go in. The same lock orders them with a deletion.
 */
export async function react(
  ctx: Context,
  me: string,
  input: MessageRef & { emoji: string; on: boolean },
): Promise<void> {
  const { row } = await visibleMessage(ctx, me, input);
  assertMayReach(await postingContext(ctx, input.conversationId, me));
  if (row.deleted_at !== null) throw new AppError('BAD_REQUEST', 'This message was deleted');
  const where = {
    conversation_id: input.conversationId,
    seq: input.seq,
    user_id: me,
  };
  const now = ctx.ports.clock.now();
  await toldOnce(ctx, async (trx) => {
    // Not to members who joined after the message: their history does not show it, nor who
    // reacts. Nor to those removed since the checks above.
    const { members } = await lockedAudience(ctx, trx, input, me);
    // Again under the conversation's lock: restricted (or blocked) since the check above.
    assertMayReach(await postingContext(ctx, input.conversationId, me, trx));
    await assertStillLive(ctx, trx, input);
    const mine = await locking(
      ctx,
      trx
        .selectFrom('reactions')
        .select('emoji')
        .where('conversation_id', '=', where.conversation_id)
        .where('seq', '=', where.seq)
        .where('user_id', '=', me),
    ).execute();
    const has = mine.some((r) => r.emoji === input.emoji);
    if (has === input.on) return undefined;
    if (input.on && mine.length >= MAX_REACTIONS_PER_USER)
      throw new AppError('BAD_REQUEST', 'Too many reactions on one message');
    if (input.on) {
      await trx
        .insertInto('reactions')
        .values({ ...where, emoji: input.emoji, created_at: now })
        .execute();
    } else {
      await trx
        .deleteFrom('reactions')
        .where('conversation_id', '=', where.conversation_id)
        .where('seq', '=', where.seq)
        .where('user_id', '=', me)
        .where('emoji', '=', input.emoji)
        .execute();
    }
    await recordEvents(
      trx,
      members,
      {
        type: 'reaction',
        conversationId: input.conversationId,
        seq: input.seq,
        userId: me,
        emoji: input.emoji,
        on: input.on,
      },
      now,
    );
    return members;
  });
}
