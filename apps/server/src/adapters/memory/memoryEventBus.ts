import type { BusHandler, EventBus } from '@mvp/api';

/** The embedded bus: one process, so a map of handlers is the whole fan-out. */
export function createMemoryEventBus(): EventBus {
  const channels = new Map<string, Set<BusHandler>>();
  return {
    async publish(channel, message) {
      const handlers = channels.get(channel);
      if (!handlers) return;
      // Delivered after publish returns, as Redis would, so callers never see re-entrancy.
      for (const handler of [...handlers]) queueMicrotask(() => handler(message));
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
