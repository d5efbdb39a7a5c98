import type { Redis } from 'ioredis';
import type { BusHandler, EventBus, Logger } from '@mvp/api';

/**
 * Redis pub/sub with one Redis subscription per channel per instance, however many local
 * subscribers share it: the first local subscriber SUBSCRIBEs, the last one UNSUBSCRIBEs.
 * `subscriber` must be a connection dedicated to this bus (Redis puts it in subscriber mode).
 */
export function createRedisEventBus(
  publisher: Redis,
  subscriber: Redis,
  logger: Logger,
  namespace: string,
): EventBus {
  const PREFIX = `${namespace}bus:`;
  const channels = new Map<string, Set<BusHandler>>();
  // The SUBSCRIBE in flight for a channel, so concurrent first subscribers wait for the same one.
  const pending = new Map<string, Promise<unknown>>();

  subscriber.on('message', (redisChannel: string, raw: string) => {
    const handlers = channels.get(redisChannel.slice(PREFIX.length));
    if (!handlers) return;
    let message: unknown;
    try {
      message = JSON.parse(raw);
    } catch {
      logger.warn({ channel: redisChannel }, 'bus: dropped a message that is not JSON');
      return;
    }
    for (const handler of [...handlers]) {
      try {
        handler(message);
      } catch (err) {
        logger.error({ err, channel: redisChannel }, 'bus: handler threw');
      }
    }
  });

  return {
    async publish(channel, message) {
      await publisher.publish(PREFIX + channel, JSON.stringify(message));
    },
    async subscribe(channel, handler) {
      let handlers = channels.get(channel);
      if (!handlers) {
        channels.set(channel, (handlers = new Set()));
        pending.set(channel, subscriber.subscribe(PREFIX + channel));
      }
      handlers.add(handler);
      try {
        await pending.get(channel);
      } catch (err) {
        handlers.delete(handler);
        if (handlers.size === 0) channels.delete(channel);
        throw err;
      }
      const own = handlers;
      return async () => {
        if (!own.delete(handler) || own.size > 0 || channels.get(channel) !== own) return;
        channels.delete(channel);
        pending.delete(channel);
        await subscriber.unsubscribe(PREFIX + channel);
      };
    },
    async close() {
      channels.clear();
      pending.clear();
    },
  };
}
