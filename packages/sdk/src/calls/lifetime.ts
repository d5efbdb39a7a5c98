/**
 * Until the CallManager closes: what a call still does in the background (a lost start's cancel,
 * retried) stops at its end. Not an AbortController: the manager is made with every client, and
 * React Native's Hermes before 0.85 and other bare runtimes the SDK loads in have none.
 */
export type Lifetime = {
  readonly over: boolean;
  /** `stop` runs when the lifetime ends; answers a function that forgets it. */
  onEnd(stop: () => void): () => void;
};

export function createLifetime(): Lifetime & { end(): void } {
  let over = false;
  const stops = new Set<() => void>();
  return {
    get over() {
      return over;
    },
    onEnd(stop) {
      stops.add(stop);
      return () => void stops.delete(stop);
    },
    end() {
      over = true;
      for (const stop of [...stops]) stop();
      stops.clear();
    },
  };
}
