/**
 * Turns callback subscriptions into awaitable steps: `next()` resolves with the next value as it
 * arrives, so tests wait on events instead of sleeping.
 */
export function eventQueue<T>() {
  const buffered: T[] = [];
  const waiters: ((value: T) => void)[] = [];
  return {
    push(value: T) {
      const waiter = waiters.shift();
      if (waiter) waiter(value);
      else buffered.push(value);
    },
    next(timeoutMs = 5_000): Promise<T> {
      const value = buffered.shift();
      if (value !== undefined) return Promise.resolve(value);
      return new Promise<T>((resolve, reject) => {
        const waiter = (v: T) => {
          clearTimeout(timer);
          resolve(v);
        };
        const timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(waiter), 1);
          reject(new Error(`no event within ${timeoutMs} ms`));
        }, timeoutMs);
        waiters.push(waiter);
      });
    },
    get size() {
      return buffered.length;
    },
  };
}
