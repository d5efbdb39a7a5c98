import { describe, expect, it } from 'vitest';
import { answerBytesFor, CHUNK_ROWS, PAGE_BYTES, readPage, REQUEST_BYTES } from './answerBytes';

/** Items 1..count, read in chunks as a repo would, each `size` bytes; `reads` logs the chunks. */
function source(count: number, size: number) {
  const reads: [after: number, n: number][] = [];
  return {
    reads,
    read: async (n: number, last: number | undefined) => {
      const after = last ?? 0;
      reads.push([after, n]);
      await Promise.resolve();
      return Array.from(
        { length: Math.max(0, Math.min(n, count - after)) },
        (_, i) => after + i + 1,
      );
    },
    sizeOf: () => size,
  };
}

describe('readPage', () => {
  it('stops at the row limit, in chunks, and says whether there is more', async () => {
    const s = source(400, 10);
    const page = await readPage(answerBytesFor('ws'), 300, s.read, s.sizeOf);
    expect(page.items).toEqual(Array.from({ length: 300 }, (_, i) => i + 1));
    expect(page.more).toBe(true);
    expect(s.reads).toEqual([
      [0, CHUNK_ROWS],
      [CHUNK_ROWS, 301 - CHUNK_ROWS],
    ]);
    const all = await readPage(answerBytesFor('ws'), 500, source(120, 10).read, s.sizeOf);
    expect([all.items.length, all.more]).toEqual([120, false]);
  });

  it('stops at the page budget, and takes one item however large', async () => {
    const tenth = PAGE_BYTES / 10;
    const s = source(30, tenth);
    const page = await readPage(answerBytesFor('ws'), 200, s.read, s.sizeOf);
    expect([page.items.length, page.more]).toEqual([10, true]);
    const huge = await readPage(
      answerBytesFor('ws'),
      200,
      source(3, PAGE_BYTES * 5).read,
      () => PAGE_BYTES * 5,
    );
    expect([huge.items, huge.more]).toEqual([[1], true]);
  });

  it("one request's pages share its budget, read one after another", async () => {
    const budget = answerBytesFor('http');
    const half = PAGE_BYTES / 2;
    const pages = await Promise.all(
      Array.from({ length: 20 }, () => readPage(budget, 200, source(10, half).read, () => half)),
    );
    const taken = pages.map((p) => p.items.length);
    const full = REQUEST_BYTES / PAGE_BYTES; // pages of two items until the request's are spent
    expect(taken).toEqual([...Array(full).fill(2), ...Array(20 - full).fill(1)]);
    expect(budget.left).toBe(0);
    // Spent: each page reads no more than the one item it still takes (and one to tell more).
    const spent = source(10, 1);
    await readPage(budget, 200, spent.read, () => 1);
    expect(spent.reads).toEqual([[0, 2]]);
    // A failed read does not stop the ones queued behind it.
    const failing = readPage(
      budget,
      5,
      () => Promise.reject(new Error('gone')),
      () => 1,
    );
    const next = readPage(budget, 5, source(2, 1).read, () => 1);
    await expect(failing).rejects.toThrow('gone');
    expect(await next).toEqual({ items: [1], more: true }); // the request's budget is spent
  });

  it('over a WebSocket pages run side by side, each with its own page budget', async () => {
    const budget = answerBytesFor('ws');
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const slow = readPage(
      budget,
      5,
      async () => (await held, [1]),
      () => 1,
    );
    const quick = await readPage(budget, 5, source(3, 1).read, () => 1);
    expect(quick.items).toEqual([1, 2, 3]); // not behind the slow one
    release();
    expect((await slow).items).toEqual([1]);
  });
});
