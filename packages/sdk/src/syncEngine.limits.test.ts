import { describe, expect, it, vi } from 'vitest';
import type { RawSyncEvent } from './messaging';
import { createSyncEngine, QUEUE_CAP } from './syncEngine';
import {
  deferred,
  envelopeEvent,
  errorsOf,
  expectNoUnhandledRejections,
  fakeTransport,
  idIn,
  messageEvent,
  myCursor,
  snapshotOf,
} from './syncEngine.testing';

// What bounds the engine when the server or the app misbehaves: how often it reconnects, how
// much it holds, how long handled envelopes wait to be acknowledged.

expectNoUnhandledRejections();

/** Backoff windows of 100, 200, 400, 800 and then 1 600 ms, each waited out in full. */
const doubling = { backoff: { minDelayMs: 100, maxDelayMs: 1_600 }, random: () => 1 };

/** Advances the fake clock until the `n`th subscription opens; answers how long that took. */
async function msUntilSubscription(fake: ReturnType<typeof fakeTransport>, n: number) {
  let waited = 0;
  await vi.advanceTimersByTimeAsync(0);
  while (fake.subscriptions.length < n) {
    await vi.advanceTimersByTimeAsync(10);
    waited += 10;
    if (waited > 60_000) throw new Error(`no subscription ${n}`);
  }
  return waited;
}

describe('sync engine limits', () => {
  it('a stream that fails right after it started backs off as one that never started; one that lasted starts over', async () => {
    vi.useFakeTimers();
    const fake = fakeTransport([snapshotOf('0')]);
    const engine = createSyncEngine({ transport: fake.transport, ...doubling });
    errorsOf(engine);
    engine.onEvent(() => undefined);
    await engine.start();

    // The server says `started` before its stream reads anything; the read then fails each time.
    const waits: number[] = [];
    for (let n = 1; n <= 5; n++) {
      await vi.advanceTimersByTimeAsync(0); // `started`
      fake.subscriptions[n - 1]!.handlers.onError(new Error('the stream could not be read'));
      waits.push(await msUntilSubscription(fake, n + 1));
    }
    expect(waits).toEqual([100, 200, 400, 800, 1_600]);
    expect(fake.snapshotCalls()).toBe(6); // one per start: not four a second

    // Up for longer than the longest wait: the next failure is met with the shortest again.
    await vi.advanceTimersByTimeAsync(1_600);
    fake.subscriptions[5]!.handlers.onError(new Error('connection lost'));
    expect(await msUntilSubscription(fake, 7)).toBe(100);
    await engine.stop();
  });

  it('a server that answers each cold start with a resync is asked again after a backoff, not at once', async () => {
    vi.useFakeTimers();
    const fake = fakeTransport([snapshotOf('0')]);
    const engine = createSyncEngine({ transport: fake.transport, ...doubling });
    const resyncs = vi.fn();
    engine.onResync(resyncs);
    engine.onEvent(() => undefined);
    await engine.start();

    const waits: number[] = [];
    for (let n = 1; n <= 4; n++) {
      fake.push(String(n), { type: 'resync' });
      waits.push(await msUntilSubscription(fake, n + 1));
    }
    // The first cold start goes at once; the ones that follow it wait longer each time.
    expect(waits).toEqual([0, 200, 400, 800]);
    expect(resyncs).toHaveBeenCalledTimes(4);
    await engine.stop();
  });

  it('an onStarted callback that throws is reported, not left an unhandled rejection', async () => {
    const fake = fakeTransport([snapshotOf('0')]);
    const engine = createSyncEngine({ transport: fake.transport });
    const { messages } = errorsOf(engine);
    const boom = () => {
      throw new Error('the app’s onStarted failed');
    };
    engine.onEvent(() => undefined, { onStarted: boom });
    await vi.waitFor(() => expect(messages()).toEqual(['the app’s onStarted failed']));
    // Subscribed once it is live already, the callback runs at once: reported the same way.
    engine.onEvent(() => undefined, { onStarted: boom });
    expect(messages()).toEqual(['the app’s onStarted failed', 'the app’s onStarted failed']);
    await engine.stop();
  });

  it('holds at most QUEUE_CAP events for a slow app: the rest come again once those are handled, each once, in order', async () => {
    const fake = fakeTransport([snapshotOf('0')]);
    const cursors = myCursor('0');
    const engine = createSyncEngine({ transport: fake.transport, cursorStore: cursors });
    const first = deferred();
    const seen: string[] = [];
    engine.onEvent(async (_event, info) => {
      seen.push(info.id);
      if (info.id === '1') await first.promise;
    });
    await engine.start();

    const total = QUEUE_CAP + 50;
    const log: [string, RawSyncEvent][] = Array.from({ length: total }, (_, i) => [
      String(i + 1),
      messageEvent('c1', i + 1),
    ]);
    const sub = fake.subscriptions[0]!;
    for (const [id, event] of log) if (!sub.closed) fake.push(id, event);
    // QUEUE_CAP held (event 1 in hand among them): the one after them closed the subscription.
    expect(sub.closed).toBe(true);

    first.resolve();
    const second = await fake.subscribed(2);
    expect(second.from).toBe(String(QUEUE_CAP)); // every held event handled first
    for (const [id, event] of log) if (Number(id) > Number(second.from)) fake.push(id, event);
    await vi.waitFor(() => expect(seen.at(-1)).toBe(String(total)));
    expect(seen).toEqual(log.map(([id]) => id));
    expect(await idIn(cursors)).toBe(String(total));
    await engine.stop();
  });

  it('acknowledges handled envelopes during a long run of events, not only once it is drained', async () => {
    const fake = fakeTransport([snapshotOf('0')]);
    const engine = createSyncEngine({ transport: fake.transport, cursorStore: myCursor('0') });
    const last = deferred();
    engine.onEvent(async (_event, info) => {
      if (info.id === '250') await last.promise;
    });
    await engine.start();

    for (let i = 1; i <= 250; i++) fake.push(String(i), envelopeEvent);
    // The app is in event 250 (say, closed there): 249 are handled, the envelopes acknowledged
    // up to the last hundred's end.
    await vi.waitFor(() => expect(fake.acks.at(-1)).toBe('200'));
    expect(fake.acks).toContain('100');
    last.resolve();
    await vi.waitFor(() => expect(fake.acks.at(-1)).toBe('250'));
    await engine.stop();
  });
});
