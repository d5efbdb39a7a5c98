/**
 * How much stored content (ciphertext, envelopes) one answer may carry. Pages count rows, and a
 * row holds up to 64 KiB: 200 messages of history were 17 MB of JSON, and an HTTP batch of 50
 * such calls built hundreds of MB in memory while the server stalled (a review measured 263 MB
 * and 3.8 s for 20 calls; 50 ran out of string length). So a page stops once it holds
 * PAGE_BYTES and says there is more; it always takes at least one item, so paging moves on.
 * The pages of one HTTP request (a batch) share REQUEST_BYTES, and one context's pages are read
 * one after another, each in chunks of CHUNK_ROWS, so what is held at once stays near a page.
 */
export const PAGE_BYTES = 1 << 20;
export const REQUEST_BYTES = 8 << 20;
export const CHUNK_ROWS = 50;

/** One context's share: over HTTP one request's (its batch), over WebSocket one connection's. */
export type AnswerBytes = { left: number; lane: Promise<unknown> };

export function answerBytesFor(transport: 'http' | 'ws'): AnswerBytes {
  // A WebSocket answers each call in a message of its own: only the page's own budget holds.
  return { left: transport === 'http' ? REQUEST_BYTES : Infinity, lane: Promise.resolve() };
}

/**
 * Reads a page of at most `limit` items within the budget: `read(n, last)` gives the next at
 * most `n` items after `last` (undefined: from the start), in page order; `sizeOf` is an
 * item's size in the answer. `more`: the page stopped before the end (at `limit` or the budget).
 */
export function readPage<T>(
  budget: AnswerBytes,
  limit: number,
  read: (n: number, last: T | undefined) => Promise<T[]>,
  sizeOf: (item: T) => number,
): Promise<{ items: T[]; more: boolean }> {
  const page = budget.lane.then(async () => {
    const allowed = Math.min(PAGE_BYTES, budget.left);
    const items: T[] = [];
    let used = 0;
    for (;;) {
      // One more than the page holds, to tell whether there is more.
      const want = Math.min(CHUNK_ROWS, limit + 1 - items.length);
      const chunk = await read(want, items.at(-1));
      for (const item of chunk) {
        const size = sizeOf(item);
        if (items.length === limit || (items.length > 0 && used + size > allowed)) {
          budget.left = Math.max(0, budget.left - used);
          return { items, more: true };
        }
        items.push(item);
        used += size;
      }
      if (chunk.length < want) {
        budget.left = Math.max(0, budget.left - used);
        return { items, more: false };
      }
    }
  });
  budget.lane = page.catch(() => undefined);
  return page;
}
