/**
 * Hands `error` to each `onError` listener. Never throws: it runs where failures are met, which
 * must not become its own (an unhandled rejection, or a cleanup cut short midway).
 */
export function reportTo(handlers: Iterable<(error: unknown) => void>, error: unknown): void {
  for (const handler of handlers) {
    try {
      handler(error);
    } catch {
      // A listener's own failure has nowhere left to go; the other listeners still hear.
    }
  }
}
