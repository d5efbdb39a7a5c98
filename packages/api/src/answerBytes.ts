/**
 * How much stored content (ciphertext, envelopes) one answer may carry. Pages count rows, and a
 * row holds up to 64 KiB: 200 messages of history were 17 MB of JSON, and an HTTP batch of 50
 * such calls built hundreds of MB in memory while the server stalled (a review measured 263 MB
 * and 3.8 s for 20 calls; 50 ran out of string length). So a page stops once it holds
 * PAGE_BYTES and says there is more; it always takes at least one item, so paging moves on.
 *
 * The pages of one HTTP request (a batch) share REQUEST_BYTES and are read one after another
 * (its `lane`), so what a request holds at once stays near one chunk of rows. A WebSocket answers
 * each call in a message of its own and its context lives as long as the connection: there a
 * page has only its own budget and no lane (one slow read must not hold up the socket's calls).
 * Never read a page inside a transaction: the lane's next read would wait for the connection
 * the transaction holds (SQLite has one), while the transaction waits for its turn in the lane.
 */
export const PAGE_BYTES = 1 << 20;
export const REQUEST_BYTES = 8 << 20;
/** Rows a chunk reads at most: a history page (200 and one more) in one query, as before. */
export const CHUNK_ROWS = 256;
/** Rows a chunk reads once the request's bytes are spent: the one item a page still takes. */
const SPENT_CHUNK_ROWS = 2;

/** One context's share: over HTTP one request's (its batch), over WebSocket the page's own. */
export type AnswerBytes = { left: number; lane: Promise<unknown> | null };

export function answerBytesFor(transport: 'http' | 'ws'): AnswerBytes {
  return transport === 'http'
    ? { left: REQUEST_BYTES, lane: Promise.resolve() }
    : { left: Infinity, lane: null };
}

/**
 * Reads a page of at most `limit` items within the budget: `read(n, last)` gives the next at
 * most `n` items after `last` (undefined: from the start), in page order; `sizeOf` is an
 * item's size in the answer. `more`: the page stopped before the end (at `limit` or the budget).
 * `chunkRows`: items a read asks for at most while the budget lasts.
 */
export function readPage<T>(
  budget: AnswerBytes,
  limit: number,
  read: (n: number, last: T | undefined) => Promise<T[]>,
  sizeOf: (item: T) => number,
  chunkRows = CHUNK_ROWS,
): Promise<{ items: T[]; more: boolean }> {
  const run = async () => {
    const allowed = Math.min(PAGE_BYTES, budget.left);
    const items: T[] = [];
    let used = 0;
    for (;;) {
      // One more than the page holds, to tell whether there is more.
      const rows = allowed > 0 ? chunkRows : SPENT_CHUNK_ROWS;
      const want = Math.min(rows, limit + 1 - items.length);
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
  };
  if (budget.lane === null) return run();
  const page = budget.lane.then(run);
  budget.lane = page.catch(() => undefined);
  return page;
}
