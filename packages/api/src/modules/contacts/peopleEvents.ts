import type { TPeopleEvent } from '@mvp/contracts';
import type { Context } from '../../context';
import type { EventBus } from '../../ports';

/** The bus channel of everything one user's devices should hear live. */
export const userChannel = (userId: string) => `user:${userId}`;

export async function notify(bus: EventBus, userId: string, event: TPeopleEvent): Promise<void> {
  await bus.publish(userChannel(userId), event);
}

/**
 * Live people events for one user. The bus subscription is live before this resolves, so a
 * client that saw its subscription start misses nothing sent after. Released when the client
 * leaves. The durable, resumable version is the sync-stream issue's `sync.events`.
 */
export async function peopleEvents(
  ctx: Context,
  userId: string,
  signal: AbortSignal | undefined,
): Promise<AsyncIterable<TPeopleEvent>> {
  const queue: TPeopleEvent[] = [];
  let wake: (() => void) | undefined;
  const unsubscribe = await ctx.ports.bus.subscribe(userChannel(userId), (message) => {
    queue.push(message as TPeopleEvent);
    wake?.();
  });
  const aborted = new Promise<void>((resolve) =>
    signal?.addEventListener('abort', () => resolve(), { once: true }),
  );
  async function* drain() {
    try {
      while (!signal?.aborted) {
        const event = queue.shift();
        if (event) {
          yield event;
          continue;
        }
        await Promise.race([new Promise<void>((resolve) => (wake = resolve)), aborted]);
        wake = undefined;
      }
    } finally {
      await unsubscribe();
    }
  }
  return drain();
}
