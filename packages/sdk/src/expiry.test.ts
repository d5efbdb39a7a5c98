import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { MAX_WATCHED, createExpiry, type ExpiredMessage } from './expiry';
import type { Message } from './messaging';

const MINUTE = 60_000;

/** A message as the stream carries it, expiring at `expiresAt` (ms, server time). */
const message = (seq: number, expiresAt: number | null, conversationId = 'c'): Message =>
  ({
    id: `m${seq}`,
    conversationId,
    seq,
    deletedAt: null,
    expiresAt: expiresAt === null ? null : new Date(expiresAt).toISOString(),
  }) as Message;

describe('local expiry of disappearing messages', () => {
  beforeEach(() => {
    vi.useFakeTimers({
      toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date', 'performance'],
    });
    vi.setSystemTime(1_000_000);
  });
  afterEach(() => vi.useRealTimers());

  /** An expiry whose server runs `ahead` ms ahead of this device's clock. */
  function setup(ahead: number, serverTime?: () => Promise<string>) {
    const fired: ExpiredMessage[] = [];
    const removedFromUnread: [string, number][] = [];
    const errors: unknown[] = [];
    const { expiry, observe, reset } = createExpiry({
      serverTime: serverTime ?? (async () => new Date(Date.now() + ahead).toISOString()),
      expired: (conversationId, seq) => removedFromUnread.push([conversationId, seq]),
      report: (error) => errors.push(error),
    });
    expiry.onExpired((e) => fired.push(e));
    return { expiry, observe, reset, fired, removedFromUnread, errors };
  }

  it("goes at the server's time, read through the measured clock offset", async () => {
    const { expiry, observe, fired, removedFromUnread } = setup(5 * MINUTE);
    const serverNow = Date.now() + 5 * MINUTE;
    observe({ type: 'message.new', message: message(1, serverNow + MINUTE) });
    await vi.advanceTimersByTimeAsync(0);
    expect(expiry.clockOffsetMs).toBe(5 * MINUTE);
    await vi.advanceTimersByTimeAsync(MINUTE - 1);
    expect(fired).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(fired).toEqual([{ conversationId: 'c', seq: 1, messageId: 'm1' }]);
    expect(removedFromUnread).toEqual([['c', 1]]);
  });

  it('is left to the server when its removal comes first, or the message is gone or no longer expires', async () => {
    const { observe, fired } = setup(0);
    const at = Date.now() + MINUTE;
    for (const seq of [1, 2, 3, 4]) observe({ type: 'message.new', message: message(seq, at) });
    observe({ type: 'messages.removed', conversationId: 'c', seqs: [1], reason: 'expired' });
    observe({ type: 'message.updated', message: { ...message(2, at), deletedAt: 'x' } });
    observe({ type: 'message.updated', message: message(3, null) });
    await vi.advanceTimersByTimeAsync(MINUTE);
    expect(fired.map((e) => e.seq)).toEqual([4]);
  });

  it("keeps the device's clock when the server cannot be asked, and asks again later", async () => {
    let calls = 0;
    const { expiry, fired, errors } = setup(0, async () => {
      calls++;
      throw new Error('offline');
    });
    expiry.watch(message(1, Date.now() + 2 * MINUTE));
    await vi.advanceTimersByTimeAsync(2 * MINUTE);
    expect(fired.map((e) => e.seq)).toEqual([1]);
    expect(errors).toHaveLength(1);
    expiry.watch(message(2, Date.now() + MINUTE));
    await vi.advanceTimersByTimeAsync(MINUTE);
    expect(fired.map((e) => e.seq)).toEqual([1, 2]);
    expect(calls).toBe(2); // a minute after the failure, not on every timer
  });

  it("does not move when the device's clock is set forward or back and the server says so", async () => {
    // The server's clock runs on, whatever this device's wall clock says.
    const start = Date.now();
    const startMono = performance.now();
    const { expiry, fired } = setup(0, async () =>
      new Date(start + (performance.now() - startMono)).toISOString(),
    );
    expiry.watch(message(1, start + 2 * 3600_000));
    await vi.advanceTimersByTimeAsync(0);
    vi.setSystemTime(Date.now() + 3 * 3600_000); // the wall clock jumps, time does not pass
    await vi.advanceTimersByTimeAsync(2 * MINUTE);
    expect(fired).toEqual([]);
    vi.setSystemTime(Date.now() - 6 * 3600_000);
    await vi.advanceTimersByTimeAsync(2 * 3600_000 - 3 * MINUTE);
    expect(fired).toEqual([]);
    await vi.advanceTimersByTimeAsync(2 * MINUTE);
    expect(fired.map((e) => e.seq)).toEqual([1]);
  });

  it('goes within a minute of waking when it came due while the device slept', async () => {
    // Asleep, the monotonic clock (and timers) stop; the wall clock and the server do not.
    const { expiry, fired } = setup(0);
    expiry.watch(message(1, Date.now() + 10 * MINUTE));
    await vi.advanceTimersByTimeAsync(0);
    vi.setSystemTime(Date.now() + 8 * 3600_000);
    await vi.advanceTimersByTimeAsync(MINUTE);
    expect(fired.map((e) => e.seq)).toEqual([1]);
  });

  it('counts the larger of both clocks when they part and the server cannot be asked', async () => {
    let online = true;
    const { expiry, fired } = setup(0, async () => {
      if (!online) throw new Error('offline');
      return new Date().toISOString();
    });
    expiry.watch(message(1, Date.now() + 10 * MINUTE));
    await vi.advanceTimersByTimeAsync(0);
    online = false;
    vi.setSystemTime(Date.now() + 8 * 3600_000);
    await vi.advanceTimersByTimeAsync(MINUTE);
    expect(fired.map((e) => e.seq)).toEqual([1]);
  });

  it("forgets the last account's messages when another signs in", async () => {
    const { expiry, reset, fired } = setup(0);
    expiry.watch(message(1, Date.now() + MINUTE));
    await vi.advanceTimersByTimeAsync(0);
    reset();
    expiry.watch(message(2, Date.now() + 3 * MINUTE)); // the next account's
    await vi.advanceTimersByTimeAsync(4 * MINUTE);
    expect(fired.map((e) => e.seq)).toEqual([2]);
  });

  it('watches at most MAX_WATCHED messages, leaving out the one due last', async () => {
    const { expiry, fired } = setup(0);
    const now = Date.now();
    for (let seq = 1; seq <= MAX_WATCHED; seq++) expiry.watch(message(seq, now + MINUTE + seq));
    expiry.watch(message(0, now + MINUTE)); // sooner than all: the latest one goes
    await vi.advanceTimersByTimeAsync(2 * MINUTE);
    expect(fired).toHaveLength(MAX_WATCHED);
    expect(fired.some((e) => e.seq === MAX_WATCHED)).toBe(false);
    expect(fired[0]!.seq).toBe(0);
  });
});
