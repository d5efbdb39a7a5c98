/**
 * Runs tasks one at a time per key, in call order; different keys run concurrently. The crypto
 * library's store-driven functions load state, compute and save it: two of them on the same
 * session (or sender key) at once would both start from the same state and one save would be
 * lost, so every crypto operation goes through here under the name of the state it touches.
 */
export type KeyedQueue = <T>(key: string, task: () => Promise<T>) => Promise<T>;

export function createKeyedQueue(): KeyedQueue {
  const tails = new Map<string, Promise<unknown>>();
  return <T>(key: string, task: () => Promise<T>): Promise<T> => {
    const previous = tails.get(key) ?? Promise.resolve();
    const run = previous.then(task);
    const tail = run.catch(() => undefined);
    tails.set(key, tail);
    void tail.then(() => {
      if (tails.get(key) === tail) tails.delete(key);
    });
    return run;
  };
}

/**
 * The queue names: one per pairwise session, per own sender key, per received sender key, and
 * per user whose sessions are being started (a claim must not race another for the same user).
 */
export const lanes = {
  pair: (address: string) => `pair\n${address}`,
  sessions: (userId: string) => `sessions\n${userId}`,
  outbound: (conversationId: string) => `out\n${conversationId}`,
  inbound: (conversationId: string, sender: string) => `in\n${conversationId}\n${sender}`,
  prekeys: 'prekeys',
};
