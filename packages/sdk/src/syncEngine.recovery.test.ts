import { TRPCClientError } from '@trpc/client';
import { describe, expect, it, vi } from 'vitest';
import type { RawSyncEvent } from './messaging';
import { createSyncEngine } from './syncEngine';
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
  waiting,
} from './syncEngine.testing';
import { createMemoryCursorStore, readCursor, type CursorStore } from './syncTransport';

// Races between the stream, its restarts and stop(): each test holds one step open (a handler,
// a snapshot, a cursor write, an answer) while another happens.

expectNoUnhandledRejections();

/** Lets every promise job run: for what no event of its own tells the test of. */
const settle = () => new Promise((resolve) => setImmediate(resolve));

const steady = { backoff: { minDelayMs: 100, maxDelayMs: 100 }, random: () => 1 };

describe('sync engine recovery', () => {
  it('a stream error during a backlog hands each event over once: the next subscription sends the rest again', async () => {
    vi.useFakeTimers();
    const fake = fakeTransport([snapshotOf('0')]);
    // The reconnect's snapshot waits for the test, so an event can finish meanwhile.
    const snapshotHeld = deferred();
    const load = fake.transport.snapshot.bind(fake.transport);
    fake.transport.snapshot = async () => {
      const snapshot = await load();
      if (fake.snapshotCalls() > 1) await snapshotHeld.promise;
      return snapshot;
    };
    const cursors = myCursor('0');
    const engine = createSyncEngine({ transport: fake.transport, cursorStore: cursors, ...steady });
    const { messages } = errorsOf(engine);
    const gates = new Map(['1', '2', '3'].map((id) => [id, deferred()]));
    const seen: string[] = [];
    engine.onEvent(async (_event, info) => {
      seen.push(info.id);
      await gates.get(info.id)?.promise;
    });
    await engine.start();

    const log: [string, RawSyncEvent][] = ['1', '2', '3', '4'].map((id) => [
      id,
      messageEvent('c1', Number(id)),
    ]);
    for (const [id, event] of log.slice(0, 3)) fake.push(id, event);
    await vi.advanceTimersByTimeAsync(0);
    expect(seen).toEqual(['1']);
    fake.subscriptions[0]!.handlers.onError(new Error('connection lost'));
    gates.get('1')!.resolve();
    await vi.advanceTimersByTimeAsync(100); // the reconnect's backoff: it loads the snapshot
    // Whatever is in a handler now finishes while the snapshot loads.
    gates.get('2')!.resolve();
    await vi.advanceTimersByTimeAsync(0);
    gates.get('3')!.resolve();
    await vi.advanceTimersByTimeAsync(0);
    snapshotHeld.resolve();

    // The server replays what follows the cursor it is given, then a new event.
    const second = await fake.subscribed(2);
    for (const [id, event] of log) if (Number(id) > Number(second.from)) fake.push(id, event);
    await vi.waitFor(() => expect(seen.at(-1)).toBe('4'));
    expect(seen).toEqual(['1', '2', '3', '4']);
    expect(second.from).toBe('1');
    await vi.waitFor(async () => expect(await idIn(cursors)).toBe('4'));
    expect(messages()).toEqual(['connection lost']);
    await engine.stop();
  });

  it('a waiting envelope whose handler throws on a cold start comes again after a backoff; the cursor is saved after all of them', async () => {
    vi.useFakeTimers();
    const fake = fakeTransport([
      { ...snapshotOf('10'), pendingEnvelopes: [waiting('3'), waiting('4')] },
    ]);
    const cursors = createMemoryCursorStore();
    const engine = createSyncEngine({ transport: fake.transport, cursorStore: cursors, ...steady });
    const { messages } = errorsOf(engine);
    let failures = 1;
    const seen: string[] = [];
    engine.onEvent((_event, info) => {
      if (failures-- > 0) throw new Error('database busy');
      seen.push(info.id);
    });
    const started = engine.start();
    await vi.advanceTimersByTimeAsync(0);
    expect(messages()).toEqual(['database busy']);
    expect(seen).toEqual([]);
    // Not saved yet: a warm start from it would never get 3 and 4 (only a cold snapshot lists them).
    expect(await cursors.get()).toBe(null);
    expect(fake.subscriptions).toHaveLength(0);

    await vi.advanceTimersByTimeAsync(100);
    await started;
    expect(seen).toEqual(['3', '4']);
    expect(await idIn(cursors)).toBe('10');
    expect(fake.subscriptions.map((s) => s.from)).toEqual(['10']);
    await vi.waitFor(() => expect(fake.acks).toEqual(['4']));
    await engine.stop();
  });

  it('stopped while a waiting envelope keeps failing, the cursor is not saved: the next start is cold and hands it over', async () => {
    vi.useFakeTimers();
    const fake = fakeTransport([{ ...snapshotOf('10'), pendingEnvelopes: [waiting('3')] }]);
    const cursors = createMemoryCursorStore();
    const engine = createSyncEngine({ transport: fake.transport, cursorStore: cursors, ...steady });
    errorsOf(engine);
    let fail = true;
    const seen: string[] = [];
    engine.onEvent((_event, info) => {
      if (fail) throw new Error('database busy');
      seen.push(info.id);
    });
    const started = engine.start();
    await vi.advanceTimersByTimeAsync(0);
    await engine.stop(); // in the backoff
    await expect(started).rejects.toThrow('stopped before it started');
    expect(await cursors.get()).toBe(null);
    expect(fake.subscriptions).toHaveLength(0);

    fail = false;
    await engine.start();
    expect(fake.snapshotCalls()).toBe(2);
    expect(seen).toEqual(['3']);
    expect(await idIn(cursors)).toBe('10');
    await engine.stop();
  });

  it("envelopes past the snapshot's first page are read a page at a time before the stream; a page that fails starts over cold, each handed over once", async () => {
    vi.useFakeTimers();
    const all = ['1', '2', '3', '4', '5', '6', '7'].map((id) => waiting(id));
    const fake = fakeTransport([snapshotOf('10')]);
    fake.later.envelopes = all;
    // As the server does: a cold snapshot's first page is of the envelopes not acknowledged yet.
    fake.transport.snapshot = () => {
      const acked = Number(fake.acks.at(-1) ?? 0);
      const rest = all.filter((e) => Number(e.id) > acked);
      return Promise.resolve({
        ...snapshotOf('10'),
        pendingEnvelopes: rest.slice(0, 2),
        moreEnvelopes: rest.length > 2,
      });
    };
    const engine = createSyncEngine({ transport: fake.transport, ...steady });
    const { messages } = errorsOf(engine);
    const seen: string[] = [];
    engine.onEvent((_event, info) => {
      seen.push(info.id);
      // The network goes once envelope 4 is handled: the next page cannot be read.
      if (info.id === '4' && fake.pageReads.length === 1) fake.later.fail = true;
    });
    const started = engine.start();
    await vi.waitFor(() => expect(messages()).toEqual(['fetch failed']));
    expect(fake.subscriptions).toHaveLength(0); // no stream while envelopes wait unread
    expect(fake.acks.at(-1)).toBe('4'); // what was handled is acknowledged
    fake.later.fail = false;
    await vi.advanceTimersByTimeAsync(100);
    await started;
    expect(seen).toEqual(['1', '2', '3', '4', '5', '6', '7']);
    expect(fake.pageReads).toEqual(['2..10', '4..10', '6..10']);
    await vi.waitFor(() => expect(fake.acks.at(-1)).toBe('7'));
    expect(fake.subscriptions.map((s) => s.from)).toEqual(['10']);
    await engine.stop();
  });

  it('a stop() while a waiting envelope is handled waits for it; the next cold start hands over only the rest, once each', async () => {
    const all = ['1', '2', '3', '4', '5'].map((id) => waiting(id));
    const fake = fakeTransport([snapshotOf('10')]);
    // As the server does: a cold snapshot lists the envelopes not acknowledged yet.
    fake.transport.snapshot = () => {
      const acked = Number(fake.acks.at(-1) ?? 0);
      return Promise.resolve({
        ...snapshotOf('10'),
        pendingEnvelopes: all.filter((e) => Number(e.id) > acked),
      });
    };
    const engine = createSyncEngine({ transport: fake.transport });
    const seen: string[] = [];
    let handling = 0;
    let overlapped = false;
    const third = deferred();
    engine.onEvent(async (_event, info) => {
      overlapped ||= handling > 0;
      handling++;
      seen.push(info.id);
      if (info.id === '3' && seen.length === 3) await third.promise;
      handling--;
    });
    const first = engine.start().then(
      () => 'live',
      () => 'stopped first',
    );
    await vi.waitFor(() => expect(seen).toEqual(['1', '2', '3']));

    // Stopped while envelope 3 is handled, and started again at once.
    const stopped = engine.stop();
    const again = engine.start();
    await settle(); // the next start goes as far as it may while 3 is still in hand
    third.resolve();
    await stopped;
    await again;
    expect(await first).toBe('stopped first');
    expect(seen).toEqual(['1', '2', '3', '4', '5']);
    expect(overlapped).toBe(false);
    await vi.waitFor(() => expect(fake.acks).toEqual(['3', '5']));
    await engine.stop();
  });

  it('a start() during a reconnect resolves once the stream is live again, as does onStarted', async () => {
    vi.useFakeTimers();
    const fake = fakeTransport([snapshotOf('10')]);
    const engine = createSyncEngine({ transport: fake.transport, ...steady });
    errorsOf(engine);
    await engine.start();
    fake.subscriptions[0]!.handlers.onError(new Error('connection lost'));
    expect(engine.state).toBe('starting');

    const started = engine.start().then(() => [engine.state, fake.subscriptions.length]);
    const onStarted: [string, number][] = [];
    engine.onEvent(() => undefined, {
      onStarted: () => void onStarted.push([engine.state, fake.subscriptions.length]),
    });
    await vi.advanceTimersByTimeAsync(100); // the reconnect's backoff
    expect(await started).toEqual(['live', 2]);
    expect(onStarted).toEqual([['live', 2]]);
    await engine.stop();
  });

  it('a stop() while the account is asked drops the answer: the next start asks again', async () => {
    let user = 'alice';
    const firstAnswer = deferred();
    let asked = 0;
    const fake = fakeTransport([snapshotOf('10')]);
    fake.transport.whoAmI = async () => {
      const answer = user;
      if (asked++ === 0) await firstAnswer.promise;
      return answer;
    };
    const cursors = createMemoryCursorStore();
    const engine = createSyncEngine({ transport: fake.transport, cursorStore: cursors });
    const started = engine.start();
    await engine.stop(); // signed out while the server was asked who this is
    user = 'bob';
    firstAnswer.resolve(); // alice, too late
    await expect(started).rejects.toThrow('stopped before it started');

    await engine.start();
    expect(asked).toBe(2);
    expect(readCursor(await cursors.get())).toEqual({ userId: 'bob', id: '10' });
    await engine.stop();
  });

  it('a stop() while a cold start saves its cursor opens no subscription', async () => {
    const fake = fakeTransport([snapshotOf('10')]);
    const saved = deferred();
    let writes = 0;
    const cursors: CursorStore = {
      get: () => Promise.resolve(null),
      set: async () => {
        writes++;
        await saved.promise;
      },
    };
    const engine = createSyncEngine({ transport: fake.transport, cursorStore: cursors });
    const started = engine.start();
    await vi.waitFor(() => expect(writes).toBe(1));
    await engine.stop();
    saved.resolve();
    await expect(started).rejects.toThrow('stopped before it started');
    await settle(); // the start goes on from the write, to where it opened the stream
    expect(fake.subscriptions).toHaveLength(0);
    expect(engine.state).toBe('stopped');
  });

  it("after TOO_MANY_REQUESTS the stream waits the server's retryAfterMs, not the shorter backoff", async () => {
    vi.useFakeTimers();
    const fake = fakeTransport([snapshotOf('10')]);
    const engine = createSyncEngine({ transport: fake.transport, ...steady });
    const { messages } = errorsOf(engine);
    await engine.start();
    fake.subscriptions[0]!.handlers.onError(
      TRPCClientError.from({
        error: {
          code: -32029,
          message: 'Slow down',
          data: { appCode: 'TOO_MANY_REQUESTS', httpStatus: 429, retryAfterMs: 5000 },
        },
      }),
    );
    await vi.advanceTimersByTimeAsync(4999);
    expect(fake.subscriptions).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(fake.subscriptions.map((s) => s.from)).toEqual(['10', '10']);
    expect(messages()).toEqual(['Slow down']);
    await engine.stop();
  });

  it('an envelope handled before a resync is acknowledged before the cold snapshot, which would list it again', async () => {
    const fake = fakeTransport([snapshotOf('0'), snapshotOf('90')]);
    const ackAnswered = deferred();
    let answered = false;
    void ackAnswered.promise.then(() => (answered = true));
    const ack = fake.transport.ack.bind(fake.transport);
    fake.transport.ack = async (upTo, owner) => {
      await ack(upTo, owner);
      await ackAnswered.promise;
    };
    /** For each snapshot loaded: whether the ack had been answered by then. */
    const ackedBeforeSnapshot: boolean[] = [];
    const load = fake.transport.snapshot.bind(fake.transport);
    fake.transport.snapshot = () => {
      ackedBeforeSnapshot.push(answered);
      return load();
    };
    const engine = createSyncEngine({ transport: fake.transport });
    engine.onEvent(() => undefined);
    await engine.start();

    fake.push('1', envelopeEvent);
    fake.push('2', { type: 'resync' });
    await vi.waitFor(() => expect(fake.acks).toEqual(['1']));
    ackAnswered.resolve();
    const second = await fake.subscribed(2);
    expect(second.from).toBe('90');
    expect(ackedBeforeSnapshot).toEqual([false, true]);
    await engine.stop();
  });
});
