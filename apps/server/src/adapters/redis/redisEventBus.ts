import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { BUS_GAP, type BusHandler, type EventBus, type Logger } from '@mvp/api';

/**
 * Redis pub/sub with one Redis subscription per channel per instance, however many local
 * subscribers share it: the first local subscriber SUBSCRIBEs, the last one UNSUBSCRIBEs.
 * `subscriber` must be a connection dedicated to this bus (Redis puts it in subscriber mode).
 *
 * This instance's own subscribers get its messages directly, as the in-process bus delivers
 * them (the same object, after `publish` returns), not through Redis: a device connected to the
 * instance that handled the write pays no Redis round trip, and only the other instances do.
 * Each message on the wire names the instance it came from, so its own echo is dropped unread.
 */
export function createRedisEventBus(
  publisher: Redis,
  subscriber: Redis,
  logger: Logger,
  namespace: string,
): EventBus {
  const PREFIX = `${namespace}bus:`;
  // `{"from":"<this instance>","message":…}`; the prefix recognises an echo without parsing it.
  const ownPrefix = `{"from":"${randomUUID()}","message":`;
  const channels = new Map<string, Set<BusHandler>>();
  // The SUBSCRIBE in flight for a channel, so concurrent first subscribers wait for the same one.
  const pending = new Map<string, Promise<unknown>>();

  const outbox = publishBatches(publisher);

  const deliver = (channel: string, handlers: BusHandler[], message: unknown) => {
    for (const handler of handlers) {
      try {
        handler(message);
      } catch (err) {
        logger.error({ err, channel }, 'bus: handler threw');
      }
    }
  };

  // ioredis subscribes again after a reconnect, but whatever was published meanwhile is gone:
  // each local subscriber hears of the gap (BUS_GAP) and looks again, or a stream at its head
  // would wait for its user's next event to see the one it missed. Told once the channels are
  // subscribed again (SUBSCRIBE is idempotent; ioredis sends its own just after 'ready'), so
  // what is published after the look is not missed either.
  let readyBefore = subscriber.status === 'ready';
  subscriber.on('ready', () => {
    if (!readyBefore) {
      readyBefore = true;
      return;
    }
    const names = [...channels.keys()];
    if (names.length === 0) return;
    subscriber.subscribe(...names.map((channel) => PREFIX + channel)).then(
      () => {
        logger.warn({ channels: names.length }, 'bus: back on Redis; subscribers look again');
        for (const [channel, handlers] of channels) deliver(channel, [...handlers], BUS_GAP);
      },
      // Down again: the next 'ready' tries again.
      (err: unknown) => logger.warn({ err }, 'bus: subscribing again after a reconnect failed'),
    );
  });

  subscriber.on('message', (redisChannel: string, raw: string) => {
    if (raw.startsWith(ownPrefix)) return;
    const channel = redisChannel.slice(PREFIX.length);
    const handlers = channels.get(channel);
    if (!handlers) return;
    let message: unknown;
    try {
      message = (JSON.parse(raw) as { message?: unknown }).message;
    } catch {
      logger.warn({ channel }, 'bus: dropped a message that is not JSON');
      return;
    }
    if (message !== undefined) deliver(channel, [...handlers], message);
  });

  return {
    async publish(channel, message) {
      // Queued for Redis first, so the other instances' copy leaves before this one's own
      // subscribers are served.
      const sent = outbox.publish(PREFIX + channel, `${ownPrefix}${JSON.stringify(message)}}`);
      const handlers = channels.get(channel);
      // Those subscribed now, after publish returns, as Redis would: callers never see
      // re-entrancy.
      if (handlers) {
        const now = [...handlers];
        queueMicrotask(() => deliver(channel, now, message));
      }
      await sent;
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
        // The failed SUBSCRIBE goes with its last waiter: the next subscriber sends a new one.
        if (handlers.size === 0 && channels.get(channel) === handlers) {
          channels.delete(channel);
          pending.delete(channel);
        }
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

/**
 * PUBLISHes issued together (in one synchronous run, as a write's wake-ups are) leave in one
 * pipeline: a group send wakes every member with one PUBLISH each, and on a busy host a socket
 * write costs far more than the command (bench/README.md). ioredis's own auto-pipelining does the
 * same but waits for `setImmediate`, after every other callback ready in that turn, which held a
 * wake-up for another instance back by about 0.3 ms at the median (bench (d)).
 */
function publishBatches(publisher: Redis) {
  let queued: { channel: string; text: string; settle: (err: Error | null) => void }[] = [];
  const flush = () => {
    const batch = queued;
    queued = [];
    const pipeline = publisher.pipeline();
    for (const { channel, text } of batch) pipeline.publish(channel, text);
    pipeline.exec().then(
      (results) => batch.forEach((item, i) => item.settle(results?.[i]?.[0] ?? null)),
      (err: Error) => batch.forEach((item) => item.settle(err)),
    );
  };
  return {
    publish(channel: string, text: string): Promise<void> {
      return new Promise((resolve, reject) => {
        if (queued.length === 0) queueMicrotask(flush);
        queued.push({ channel, text, settle: (err) => (err ? reject(err) : resolve()) });
      });
    },
  };
}
