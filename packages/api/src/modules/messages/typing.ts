import type { Context } from '../../context';
import { enforceLimit } from '../../rateLimit';
import { notify } from '../contacts/peopleEvents';
import { memberIds } from '../conversations/conversations.repo';
import { assertMaySpeak, postingContext } from './posting';

/** Clients renew every few seconds while typing; the others show it until `until`. */
export const TYPING_TTL_MS = 6_000;
const TYPING_LIMIT = { points: 30, durationSeconds: 60 };

/** Ephemeral: over the bus to the other members' connected devices, never stored. */
export async function typing(ctx: Context, me: string, conversationId: string): Promise<void> {
  await enforceLimit(ctx, 'typing', TYPING_LIMIT, `${me}:${conversationId}`);
  // Read fresh: typing is not worth a cached decision, and a block must silence it at once.
  assertMaySpeak(await postingContext(ctx, conversationId, me));
  const until = new Date(ctx.ports.clock.now() + TYPING_TTL_MS).toISOString();
  const others = (await memberIds(ctx.ports.db, conversationId)).filter((id) => id !== me);
  await Promise.all(
    others.map((id) =>
      notify(ctx.ports.bus, id, { type: 'typing', conversationId, userId: me, until }),
    ),
  );
}
