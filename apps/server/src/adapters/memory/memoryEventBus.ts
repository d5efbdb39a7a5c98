import type { BusHandler, EventBus } from '@mvp/api';

const PUBLISHED = Promise.resolve();

/** The embedded bus: one process, so a map of handlers is the whole fan-out. */
export function createMemoryEventBus(): EventBus {
  const channels = new Map<string, Set<BusHandler>>();
  return {
    publish(channel, message) {
      const handlers = channels.get(channel);
      // Delivered after publish returns, as Redis would, so callers never see re-entrancy. The
      // loop only queues, so the set cannot change under it; no copy (nor a promise of its own:
      // every send publishes, bench/README session 21).
      if (handlers) for (const handler of handlers) queueMicrotask(() => handler(message));
      return PUBLISHED;
    },
    async subscribe(channel, handler) {
      let handlers = channels.get(channel);
      if (!handlers) channels.set(channel, (handlers = new Set()));
      handlers.add(handler);
      return async () => {
        handlers.delete(handler);
        if (handlers.size === 0 && channels.get(channel) === handlers) channels.delete(channel);
      };
    },
    async close() {
      channels.clear();
    },
  };
}
