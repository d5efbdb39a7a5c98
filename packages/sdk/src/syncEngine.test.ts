import { TRPCClientError } from '@trpc/client';
import { describe, expect, it, vi } from 'vitest';
import { bytesToBase64 } from './base64';
import { decodeMessage, type RawSyncEvent, type Snapshot, type SyncEvent } from './messaging';
import { createSyncEngine } from './syncEngine';
import {
  envelopeEvent,
  errorsOf,
  expectNoUnhandledRejections,
  fakeTransport,
  idIn,
  ME,
  messageEvent,
  myCursor,
  recorder,
  snapshotOf,
  waiting,
  wire,
} from './syncEngine.testing';
import {
  createMemoryCursorStore,
  readCursor,
  writeCursor,
  type CursorStore,
  type SyncTransport,
} from './syncTransport';

expectNoUnhandledRejections();

describe('sync engine', () => {
  it('cold start: snapshot first, then the stream from its cursor, which is saved', async () => {
    const fake = fakeTransport([snapshotOf('10')]);
    const cursors = createMemoryCursorStore();
    const engine = createSyncEngine({ transport: fake.transport, cursorStore: cursors });
    const order: string[] = [];
    engine.onSnapshot((s) => void order.push(`snapshot ${s.cursor}`));
    engine.onEvent((e, info) => void order.push(`${e.type} ${info.id}`));
    await engine.start();

    expect(engine.state).toBe('live');
    expect(fake.subscriptions.map((s) => s.from)).toEqual(['10']);
    expect(await cursors.get()).toBe(writeCursor({ userId: ME, id: '10' }));
    fake.push('11', messageEvent('c1', 1));
    await vi.waitFor(() => expect(order).toEqual(['snapshot 10', 'message.new 11']));
    await vi.waitFor(async () => expect(await idIn(cursors)).toBe('11'));
  });

  it('warm start resumes from the stored cursor without handing the app a snapshot', async () => {
    const fake = fakeTransport([snapshotOf('50')]);
    const engine = createSyncEngine({
      transport: fake.transport,
      cursorStore: myCursor('42'),
    });
    const snapshots = vi.fn();
    engine.onSnapshot(snapshots);
    await engine.start();
    expect(fake.subscriptions.map((s) => s.from)).toEqual(['42']);
    expect(snapshots).not.toHaveBeenCalled();
  });

  it('a stored cursor of another account is not resumed: the app restarted as someone else starts cold', async () => {
    // One device, one cursor store: Alice's app handles an event and is closed.
    const cursors = createMemoryCursorStore();
    const alices = fakeTransport([snapshotOf('10')], 'alice');
    const before = createSyncEngine({ transport: alices.transport, cursorStore: cursors });
    const seen = recorder();
    before.onEvent(seen.handler);
    await before.start();
    alices.push('11', messageEvent('c1', 1));
    await vi.waitFor(() => expect(seen.seen).toHaveLength(1));
    await before.stop();
    expect(readCursor(await cursors.get())).toEqual({ userId: 'alice', id: '11' });

    // After a restart Bob signs in: his stream is at 30, where 11 names a place he never was.
    const bobs = fakeTransport([snapshotOf('30')], 'bob');
    const after = createSyncEngine({ transport: bobs.transport, cursorStore: cursors });
    const snapshots: string[] = [];
    after.onSnapshot((s) => void snapshots.push(s.cursor));
    await after.start();
    expect(snapshots).toEqual(['30']);
    expect(bobs.subscriptions.map((s) => s.from)).toEqual(['30']);
    expect(readCursor(await cursors.get())).toEqual({ userId: 'bob', id: '30' });
    await after.stop();

    // Bob's own cursor is his to resume.
    const again = fakeTransport([snapshotOf('35')], 'bob');
    const later = createSyncEngine({ transport: again.transport, cursorStore: cursors });
    later.onSnapshot((s) => void snapshots.push(s.cursor));
    await later.start();
    expect(again.subscriptions.map((s) => s.from)).toEqual(['30']);
    expect(snapshots).toEqual(['30']);
  });

  it('a bare cursor kept by an older SDK names no account: the start is cold, then owned', async () => {
    const fake = fakeTransport([snapshotOf('50')]);
    const cursors = createMemoryCursorStore('42');
    const engine = createSyncEngine({ transport: fake.transport, cursorStore: cursors });
    const snapshots = vi.fn();
    engine.onSnapshot(snapshots);
    await engine.start();
    expect(fake.subscriptions.map((s) => s.from)).toEqual(['50']);
    expect(snapshots).toHaveBeenCalledTimes(1);
    expect(readCursor(await cursors.get())).toEqual({ userId: ME, id: '50' });
  });

  it('delivers in order, awaiting each handler before the next event and before saving', async () => {
    const fake = fakeTransport([snapshotOf('0')]);
    const saved: (string | null)[] = [];
    const store: CursorStore = {
      get: () => Promise.resolve(null),
      set: (id) => {
        saved.push(id);
        return Promise.resolve();
      },
    };
    const engine = createSyncEngine({ transport: fake.transport, cursorStore: store });
    let release!: () => void;
    const handled: string[] = [];
    engine.onEvent(async (_event, info) => {
      handled.push(`start ${info.id}`);
      if (info.id === '1') await new Promise<void>((r) => (release = r));
      handled.push(`end ${info.id}`);
    });
    await engine.start();

    fake.push('1', messageEvent('c1', 1));
    fake.push('2', messageEvent('c1', 2));
    await vi.waitFor(() => expect(handled).toEqual(['start 1']));
    const ids = () => saved.map((value) => readCursor(value)?.id);
    expect(ids()).toEqual(['0']);
    release();
    await vi.waitFor(() => expect(handled).toEqual(['start 1', 'end 1', 'start 2', 'end 2']));
    await vi.waitFor(() => expect(ids()).toEqual(['0', '1', '2']));
  });

  it('drops duplicates; ephemeral events are delivered but never move the cursor', async () => {
    const fake = fakeTransport([snapshotOf('5')]);
    const cursors = createMemoryCursorStore();
    const engine = createSyncEngine({ transport: fake.transport, cursorStore: cursors });
    const app = recorder();
    engine.onEvent(app.handler);
    await engine.start();

    fake.push('4', messageEvent('c1', 1)); // older than the snapshot's cursor
    fake.push('6', messageEvent('c1', 2));
    fake.push('6', messageEvent('c1', 2)); // a reconnect raced the backlog
    fake.push('6', { type: 'presence', userId: 'u2', presence: null });
    fake.push('7', messageEvent('c1', 3));
    await vi.waitFor(() => expect(app.seen).toHaveLength(3));
    expect(app.seen).toEqual([
      { id: '6', type: 'message.new', seq: 2, ephemeral: false },
      { id: '6', type: 'presence', seq: undefined, ephemeral: true },
      { id: '7', type: 'message.new', seq: 3, ephemeral: false },
    ]);
    await vi.waitFor(async () => expect(await idIn(cursors)).toBe('7'));
  });

  it('hands the app bytes for message ciphertexts', async () => {
    const fake = fakeTransport([snapshotOf('0')]);
    const engine = createSyncEngine({ transport: fake.transport });
    const got: SyncEvent[] = [];
    engine.onEvent((e) => void got.push(e));
    await engine.start();
    fake.push('1', messageEvent('c1', 1));
    await vi.waitFor(() => expect(got).toHaveLength(1));
    const event = got[0]!;
    if (event.type !== 'message.new') throw new Error(event.type);
    expect(event.message.ciphertext).toBeInstanceOf(Uint8Array);
    expect(new TextDecoder().decode(event.message.ciphertext)).toBe('#1');
  });

  it('on resync: forgets the cursor, tells the app, reloads the snapshot and resubscribes', async () => {
    const fake = fakeTransport([snapshotOf('3'), snapshotOf('90')]);
    const cursors = createMemoryCursorStore();
    const engine = createSyncEngine({ transport: fake.transport, cursorStore: cursors });
    const steps: string[] = [];
    engine.onResync(async () => {
      steps.push(`resync (cursor ${String(await cursors.get())})`);
    });
    engine.onSnapshot((s) => void steps.push(`snapshot ${s.cursor}`));
    engine.onEvent((e, info) => void steps.push(`${e.type} ${info.id}`));
    await engine.start();

    fake.push('80', { type: 'resync' });
    fake.push('81', messageEvent('c1', 9)); // from the abandoned subscription: ignored
    const second = await fake.subscribed(2);
    expect(fake.subscriptions[0]!.closed).toBe(true);
    expect(second.from).toBe('90');
    fake.push('91', messageEvent('c1', 10));
    await vi.waitFor(() =>
      expect(steps).toEqual([
        'snapshot 3',
        'resync (cursor null)',
        'snapshot 90',
        'message.new 91',
      ]),
    );
  });

  it('a refused cursor is a resync; a handler that throws gets the same event again', async () => {
    vi.useFakeTimers();
    const fake = fakeTransport([snapshotOf('20')]);
    const engine = createSyncEngine({
      transport: fake.transport,
      cursorStore: myCursor('999'),
      backoff: { minDelayMs: 100, maxDelayMs: 100 },
    });
    const errors: unknown[] = [];
    engine.onError((e) => errors.push(e));
    const resyncs = vi.fn();
    engine.onResync(resyncs);
    let failures = 1;
    const handled: string[] = [];
    engine.onEvent((_e, info) => {
      if (failures-- > 0) throw new Error('app not ready');
      handled.push(info.id);
    });
    await vi.waitFor(() => expect(fake.subscriptions).toHaveLength(1));

    fake.subscriptions[0]!.handlers.onError(
      TRPCClientError.from({
        error: { code: -32600, message: 'Unknown event id', data: { appCode: 'BAD_REQUEST' } },
      }),
    );
    await vi.advanceTimersByTimeAsync(100);
    const cold = await fake.subscribed(2);
    expect(cold.from).toBe('20');
    expect(resyncs).toHaveBeenCalledTimes(1);

    fake.push('21', messageEvent('c1', 1));
    await vi.advanceTimersByTimeAsync(0);
    expect(handled).toEqual([]);
    await vi.advanceTimersByTimeAsync(100);
    expect(handled).toEqual(['21']);
    expect(errors.map((e) => (e as Error).message)).toEqual(['Unknown event id', 'app not ready']);
  });

  it('stops for good on UNAUTHORIZED and reports it', async () => {
    const fake = fakeTransport([snapshotOf('1')]);
    const engine = createSyncEngine({ transport: fake.transport });
    const errors: unknown[] = [];
    engine.onError((e) => errors.push(e));
    await engine.start();
    fake.subscriptions[0]!.handlers.onError(
      TRPCClientError.from({
        error: { code: -32001, message: 'Session ended', data: { appCode: 'UNAUTHORIZED' } },
      }),
    );
    expect(engine.state).toBe('stopped');
    expect(fake.subscriptions[0]!.closed).toBe(true);
    expect(errors).toHaveLength(1);
  });

  it("on UNAUTHORIZED asks for a fresh socket (the open one's token expired), once per start", async () => {
    const fake = fakeTransport([snapshotOf('1')]);
    const expired = () =>
      TRPCClientError.from({
        error: { code: -32001, message: 'Token expired', data: { appCode: 'UNAUTHORIZED' } },
      });
    let renewals = 0;
    let refuseNext = false;
    const transport: SyncTransport = {
      ...fake.transport,
      renewConnection: () => Promise.resolve(++renewals > 0),
      // Refused before it starts, as a socket whose token the server no longer takes.
      subscribe: (from, handlers) => {
        if (!refuseNext) return fake.transport.subscribe(from, handlers);
        queueMicrotask(() => handlers.onError(expired()));
        return { unsubscribe: () => undefined };
      },
    };
    const engine = createSyncEngine({ transport, backoff: { minDelayMs: 1, maxDelayMs: 1 } });
    const errors: unknown[] = [];
    engine.onError((e) => errors.push(e));
    await engine.start();
    fake.subscriptions[0]!.handlers.onError(expired());
    const second = await fake.subscribed(2);
    await vi.waitFor(() => expect(engine.state).toBe('live'));
    expect([renewals, errors.length, second.from]).toEqual([1, 0, '1']);

    // Live again, a later expiry is renewed again; refused once more before any start: over.
    refuseNext = true;
    second.handlers.onError(expired());
    await vi.waitFor(() => expect(engine.state).toBe('stopped'));
    expect([renewals, errors.length]).toEqual([2, 1]);
  });

  it('a cold start hands over envelopes that waited from before the snapshot, then acks them', async () => {
    const fake = fakeTransport([
      { ...snapshotOf('10'), pendingEnvelopes: [waiting('4'), waiting('7')] },
    ]);
    const seen = recorder();
    const engine = createSyncEngine({ transport: fake.transport });
    engine.onEvent(seen.handler);
    await engine.start();
    expect(seen.seen.map((e) => [e.type, e.id])).toEqual([
      ['envelope', '4'],
      ['envelope', '7'],
    ]);
    await vi.waitFor(() => expect(fake.acks).toEqual(['7']));
    expect(fake.subscriptions.map((s) => s.from)).toEqual(['10']);
  });

  it('a waiting envelope it cannot read is reported and passed over; the start goes on and acks past it', async () => {
    const fake = fakeTransport([
      {
        ...snapshotOf('10'),
        pendingEnvelopes: [waiting('4', 'AAEC'), waiting('6', 'not base64!'), waiting('7', 'AAEC')],
      },
    ]);
    const seen = recorder();
    const errors: unknown[] = [];
    const engine = createSyncEngine({ transport: fake.transport });
    engine.onEvent(seen.handler);
    engine.onError((e) => errors.push(e));
    await engine.start();
    expect(seen.seen.map((e) => [e.type, e.id])).toEqual([
      ['envelope', '4'],
      ['envelope', '7'],
    ]);
    expect(errors).toHaveLength(1);
    expect(String(errors[0])).toMatch(/base64/);
    await vi.waitFor(() => expect(fake.acks).toEqual(['7']));
    expect(fake.snapshotCalls()).toBe(1);
    expect(engine.state).toBe('live');
  });

  it('acknowledges envelopes once the app has handled them', async () => {
    const fake = fakeTransport([snapshotOf('0')]);
    const engine = createSyncEngine({ transport: fake.transport });
    const releases: (() => void)[] = [];
    engine.onEvent(async (e) => {
      if (e.type === 'envelope') await new Promise<void>((r) => releases.push(r));
    });
    await engine.start();
    fake.push('1', envelopeEvent);
    fake.push('2', envelopeEvent);
    await vi.waitFor(() => expect(releases).toHaveLength(1));
    expect(fake.acks).toEqual([]);
    releases[0]!();
    await vi.waitFor(() => expect(releases).toHaveLength(2));
    expect(fake.acks).toEqual([]);
    releases[1]!();
    // One ack covers both, sent once the queue is empty.
    await vi.waitFor(() => expect(fake.acks).toEqual(['2']));
    expect(fake.ackOwners).toEqual([ME]);
  });

  describe('delivery receipts', () => {
    /** An engine whose handler holds the first event until released, so the rest queue up. */
    async function held(options: { deliveryReceipts?: boolean } = {}) {
      const fake = fakeTransport([snapshotOf('0')]);
      const engine = createSyncEngine({
        transport: fake.transport,
        deliveryReceiptDelayMs: 0,
        ...options,
      });
      const { errors } = errorsOf(engine);
      let release!: () => void;
      const holding = new Promise<void>((r) => (release = r));
      const handled: string[] = [];
      engine.onEvent(async (_e, info) => {
        if (handled.length === 0) await holding;
        handled.push(info.id);
      });
      await engine.start();
      return { fake, engine, errors, release, handled };
    }

    it('messages from others are marked delivered once handled: one mark per conversation and burst, none for mine', async () => {
      const { fake, engine, release, handled } = await held();
      fake.push('1', messageEvent('c1', 1));
      fake.push('2', messageEvent('c1', 2));
      fake.push('3', messageEvent('c2', 1, ME));
      fake.push('4', messageEvent('c3', 7));
      expect(fake.marks).toEqual([]); // nothing before the app has it
      release();
      await vi.waitFor(() => expect(handled).toHaveLength(4));
      await vi.waitFor(() => expect([...fake.marks].sort()).toEqual(['c1:2@me', 'c3:7@me']));
      expect(fake.markCalls()).toBe(1); // both conversations in one call
      fake.push('5', messageEvent('c2', 2));
      await vi.waitFor(() => expect(fake.marks).toContain('c2:2@me'));
      expect(fake.marks).toHaveLength(3);
      await engine.stop();
    });

    it('off: nothing is marked', async () => {
      const { fake, engine, release, handled } = await held({ deliveryReceipts: false });
      fake.push('1', messageEvent('c1', 1));
      fake.push('2', envelopeEvent);
      release();
      await vi.waitFor(() => expect(fake.acks).toEqual(['2'])); // flushed, the envelope acked
      expect(handled).toEqual(['1', '2']);
      expect(fake.marks).toEqual([]);
      await engine.stop();
    });

    it('marks wait for more messages, then go out as one per conversation; stopping sends them at once', async () => {
      vi.useFakeTimers();
      try {
        const fake = fakeTransport([snapshotOf('0')]);
        const engine = createSyncEngine({
          transport: fake.transport,
          deliveryReceiptDelayMs: 500,
        });
        const handled: string[] = [];
        engine.onEvent((_e, info) => void handled.push(info.id));
        await engine.start();
        fake.push('1', messageEvent('c1', 1));
        await vi.advanceTimersByTimeAsync(300);
        fake.push('2', messageEvent('c1', 2));
        await vi.advanceTimersByTimeAsync(199);
        expect(handled).toEqual(['1', '2']);
        expect(fake.marks).toEqual([]);
        await vi.advanceTimersByTimeAsync(1);
        expect(fake.marks).toEqual(['c1:2@me']);
        fake.push('3', messageEvent('c2', 1));
        await vi.advanceTimersByTimeAsync(10);
        expect(fake.marks).toHaveLength(1);
        await engine.stop();
        expect(fake.marks).toEqual(['c1:2@me', 'c2:1@me']);
      } finally {
        vi.useRealTimers();
      }
    });

    it('a cold start marks the newest messages from others past my delivered position', async () => {
      const snapshot = snapshotOf('9', [
        { id: 'c1', lastSeq: 5, unread: 1, readSeq: 4 },
        { id: 'c2', lastSeq: 3, unread: 0, readSeq: 3 },
        { id: 'c3', lastSeq: 8, unread: 0, readSeq: 8 },
      ]);
      const last = (conversationId: string, seq: number, senderId: string) =>
        (messageEvent(conversationId, seq, senderId) as { message: object }).message;
      const [c1, c2, c3] = snapshot.conversations;
      c1!.lastMessage = decodeMessage(wire(last('c1', 5, 'other'))); // delivered 4: marked
      c2!.lastMessage = decodeMessage(wire(last('c2', 3, 'other'))); // delivered 3 already
      c3!.lastMessage = decodeMessage(wire(last('c3', 8, ME))); // mine
      const fake = fakeTransport([snapshot]);
      const engine = createSyncEngine({ transport: fake.transport, deliveryReceiptDelayMs: 0 });
      await engine.start();
      await vi.waitFor(() => expect(fake.marks).toEqual(['c1:5@me']));
      await engine.stop();
      expect(fake.marks).toEqual(['c1:5@me']);
    });

    it("a warm start marks the snapshot's newest messages from others too (a mark lost with the last run)", async () => {
      const snapshot = snapshotOf('9', [{ id: 'c1', lastSeq: 5, unread: 1, readSeq: 4 }]);
      snapshot.conversations[0]!.lastMessage = decodeMessage(
        wire((messageEvent('c1', 5) as { message: object }).message),
      );
      const fake = fakeTransport([snapshot]);
      const engine = createSyncEngine({
        transport: fake.transport,
        cursorStore: myCursor('9'),
        deliveryReceiptDelayMs: 0,
      });
      const seen: Snapshot[] = [];
      engine.onSnapshot((s) => void seen.push(s));
      await engine.start();
      expect(seen).toEqual([]); // warm: the app is not handed the snapshot
      await vi.waitFor(() => expect(fake.marks).toEqual(['c1:5@me']));
      await engine.stop();
    });

    it('a mark refused for good is reported once and not sent again', async () => {
      const { fake, engine, errors, release } = await held();
      release();
      fake.failMarks(() =>
        TRPCClientError.from({
          error: { code: -32003, message: 'Not yours', data: { appCode: 'FORBIDDEN' } },
        }),
      );
      fake.push('1', messageEvent('c1', 1));
      await vi.waitFor(() => expect(errors).toHaveLength(1));
      fake.failMarks(undefined);
      fake.push('2', messageEvent('c2', 1));
      await vi.waitFor(() => expect(fake.marks).toEqual(['c1:1@me', 'c2:1@me']));
      expect(errors).toHaveLength(1);
      await engine.stop();
    });

    it('a failed call is reported and its marks sent again with the next', async () => {
      const { fake, engine, errors, release } = await held();
      release();
      fake.failMarks(() => new Error('offline'));
      fake.push('1', messageEvent('c1', 1));
      await vi.waitFor(() => expect(errors).toHaveLength(1));
      fake.failMarks(undefined);
      fake.push('2', messageEvent('c2', 1));
      await vi.waitFor(() => expect(fake.marks).toEqual(['c1:1@me', 'c1:1@me', 'c2:1@me']));
      expect(fake.markCalls()).toBe(2);
      expect(errors).toHaveLength(1);
      await engine.stop();
    });
  });

  it('a start() still waiting when the engine is stopped rejects: the stream stopped first', async () => {
    const fake = fakeTransport([snapshotOf('0')]);
    let release!: () => void;
    const snapshotHeld = new Promise<void>((r) => (release = r));
    const engine = createSyncEngine({ transport: fake.transport });
    engine.onSnapshot(() => snapshotHeld);
    const started = engine.start();
    await vi.waitFor(() => expect(fake.snapshotCalls()).toBe(1));
    const stopped = engine.stop();
    release();
    await stopped;
    await expect(started).rejects.toThrow('the sync stream stopped before it started');
    expect(engine.state).toBe('stopped');
  });

  it("an envelope handled after a stop is acknowledged as its own stream's account, not the next one's", async () => {
    let user = ME;
    const fake = fakeTransport([snapshotOf('0')]);
    fake.transport.whoAmI = () => Promise.resolve(user);
    const engine = createSyncEngine({ transport: fake.transport });
    let release!: () => void;
    engine.onEvent(async (e) => {
      if (e.type === 'envelope' && user === ME) await new Promise<void>((r) => (release = r));
    });
    await engine.start();
    fake.push('1', envelopeEvent);
    await vi.waitFor(() => expect(release).toBeDefined());
    // A sign-in as someone else stops the stream while the envelope is still being handled.
    const stopped = engine.stop();
    user = 'someone-else';
    release();
    await stopped;
    await vi.waitFor(() => expect(fake.acks).toEqual(['1']));
    expect(fake.ackOwners).toEqual([ME]);
    await engine.start();
    await fake.subscribed(2);
    expect(fake.ackOwners).toEqual([ME]);
  });

  it('keeps unread counts from the snapshot and the stream', async () => {
    const fake = fakeTransport([
      snapshotOf('10', [
        { id: 'c1', lastSeq: 5, unread: 2, readSeq: 3 },
        { id: 'c2', lastSeq: 1, unread: 1, readSeq: 0 },
      ]),
    ]);
    const engine = createSyncEngine({ transport: fake.transport });
    const changes: [string, number][] = [];
    engine.onUnreadChange((id, n) => changes.push([id, n]));
    engine.onEvent(() => undefined);
    await engine.start();
    expect([engine.unread('c1'), engine.unread('c2'), engine.unreadTotal()]).toEqual([2, 1, 3]);

    const receipt = (conversationId: string, readSeq: number) =>
      wire<RawSyncEvent>({
        type: 'receipt',
        conversationId,
        userId: ME,
        deliveredSeq: readSeq,
        readSeq,
      });
    fake.push('11', messageEvent('c1', 5)); // already in the snapshot
    fake.push('12', messageEvent('c1', 6));
    fake.push('13', messageEvent('c1', 7));
    fake.push('14', receipt('c1', 6)); // read on another device of mine
    fake.push('15', messageEvent('c2', 2, ME)); // my own message reads the conversation
    fake.push('16', {
      type: 'conversation.left',
      conversationId: 'c1',
      reason: 'left',
    });
    await vi.waitFor(() => expect(engine.unreadTotal()).toBe(0));
    expect(changes).toEqual([
      ['c1', 2],
      ['c2', 1],
      ['c1', 3],
      ['c1', 4],
      ['c1', 1],
      ['c2', 0],
      ['c1', 0],
    ]);
  });

  it('forgets the unread counts when the account changes, also an event in hand then', async () => {
    const fake = fakeTransport([
      snapshotOf('10', [
        { id: 'c1', lastSeq: 5, unread: 2, readSeq: 3 },
        { id: 'c2', lastSeq: 1, unread: 1, readSeq: 0 },
      ]),
    ]);
    const engine = createSyncEngine({ transport: fake.transport });
    const changes: [string, number][] = [];
    engine.onUnreadChange((id, n) => changes.push([id, n]));
    let inHand!: () => void;
    let release!: () => void;
    const handling = new Promise<void>((r) => (inHand = r));
    engine.onEvent(async () => {
      inHand();
      await new Promise<void>((r) => (release = r));
    });
    await engine.start();
    expect(engine.unreadTotal()).toBe(3);
    fake.push('11', messageEvent('c1', 6));
    await handling;

    const stopped = engine.accountChanged();
    expect([engine.unread('c1'), engine.unread('c2'), engine.unreadTotal()]).toEqual([0, 0, 0]);
    release();
    await stopped;
    expect(engine.state).toBe('stopped');
    expect(engine.unreadTotal()).toBe(0);
    expect(changes).toEqual([
      ['c1', 2],
      ['c2', 1],
      ['c1', 0],
      ['c2', 0],
    ]);
  });

  it('a reconnect replays what the snapshot already counted: edits, deletions, leave and rejoin', async () => {
    const updated = (seq: number, deleted: boolean, type = 'message.updated') =>
      wire<RawSyncEvent>({
        type,
        message: {
          ...(messageEvent('c1', seq) as { message: object }).message,
          ciphertext: deleted ? null : bytesToBase64(new Uint8Array([1])),
          deletedAt: deleted ? new Date(0).toISOString() : null,
        },
      });
    // c1 holds 1..5 from someone else; 2 was edited, then deleted for everyone. The snapshot
    // (taken after all of it) counts 4. I left c2 and joined it again before it, 2 unread.
    const fake = fakeTransport([
      snapshotOf('22', [
        { id: 'c1', lastSeq: 5, unread: 4, readSeq: 0 },
        { id: 'c2', lastSeq: 7, unread: 2, readSeq: 5 },
      ]),
      // After the reconnect below: 3 and 4 deleted, 5 hidden for me.
      snapshotOf('26', [
        { id: 'c1', lastSeq: 5, unread: 1, readSeq: 0 },
        { id: 'c2', lastSeq: 7, unread: 2, readSeq: 5 },
      ]),
    ]);
    const cursors = myCursor('10');
    const engine = createSyncEngine({
      transport: fake.transport,
      cursorStore: cursors,
      backoff: { minDelayMs: 1, maxDelayMs: 1 },
    });
    const { seen, handler } = recorder();
    engine.onEvent(handler);
    await engine.start();
    expect([engine.unread('c1'), engine.unread('c2')]).toEqual([4, 2]);

    // The warm start replays from the stored cursor, each message filled from its row as it is
    // now: the edit of 2 arrives deleted, as its deletion does.
    const replay: RawSyncEvent[] = [
      updated(1, false, 'message.new'),
      updated(2, true, 'message.new'),
      updated(3, false, 'message.new'),
      updated(4, false, 'message.new'),
      updated(5, false, 'message.new'),
      updated(2, true), // the edit
      updated(2, true), // the deletion
      { type: 'conversation.left', conversationId: 'c2', reason: 'left' },
      wire({ type: 'conversation.joined', conversation: { id: 'c2', lastSeq: 7 } }),
      wire({ type: 'receipt', conversationId: 'c2', userId: ME, deliveredSeq: 5, readSeq: 5 }),
      messageEvent('c2', 6),
      messageEvent('c2', 7),
    ];
    replay.forEach((event, i) => fake.push(String(11 + i), event));
    await vi.waitFor(() => expect(seen.at(-1)?.id).toBe('22'));
    expect([engine.unread('c1'), engine.unread('c2')]).toEqual([4, 2]);

    // Live: 3 is deleted, and counts once however often it is removed.
    fake.push('23', updated(3, true));
    fake.push('24', {
      type: 'messages.removed',
      conversationId: 'c1',
      seqs: [3],
      reason: 'expired',
    });
    await vi.waitFor(() => expect(seen.at(-1)?.id).toBe('24'));
    expect(engine.unread('c1')).toBe(3);

    // Offline meanwhile: 4 deleted (25), 5 hidden for me (26). The reconnect's snapshot counts
    // both out, and the replay from the saved cursor must not count them out again.
    fake.subscriptions[0]!.handlers.onError(new Error('connection lost'));
    const second = await fake.subscribed(2);
    expect(second.from).toBe('24');
    await vi.waitFor(() => expect(engine.state).toBe('live'));
    expect(engine.unread('c1')).toBe(1);
    fake.push('25', updated(4, true));
    fake.push('26', {
      type: 'messages.removed',
      conversationId: 'c1',
      seqs: [5],
      reason: 'deleted_for_me',
    });
    await vi.waitFor(() => expect(seen.at(-1)?.id).toBe('26'));
    expect([engine.unread('c1'), engine.unread('c2')]).toEqual([1, 2]);
    // Still exact afterwards: the one left is 1.
    fake.push('27', updated(1, true));
    await vi.waitFor(() => expect(engine.unread('c1')).toBe(0));
  });

  describe('when handing over fails', () => {
    const steady = { backoff: { minDelayMs: 100, maxDelayMs: 100 }, random: () => 1 };

    it('an onResync handler that throws is reported and called again after a backoff; the snapshot and the stream wait for it', async () => {
      vi.useFakeTimers();
      const fake = fakeTransport([snapshotOf('3'), snapshotOf('90')]);
      const cursors = createMemoryCursorStore();
      const engine = createSyncEngine({
        transport: fake.transport,
        cursorStore: cursors,
        ...steady,
      });
      const { messages } = errorsOf(engine);
      const steps: string[] = [];
      let failures = 2;
      engine.onResync(async () => {
        steps.push('resync');
        if (failures-- > 0) throw new Error('could not clear');
      });
      engine.onSnapshot((s) => void steps.push(`snapshot ${s.cursor}`));
      engine.onEvent((e, info) => void steps.push(`${e.type} ${info.id}`));
      await engine.start();

      fake.push('4', messageEvent('c1', 1));
      fake.push('80', { type: 'resync' });
      fake.push('81', messageEvent('c1', 9)); // after it in the stream given up: never handed over
      await vi.advanceTimersByTimeAsync(0);
      expect(steps).toEqual(['snapshot 3', 'message.new 4', 'resync']);
      expect(messages()).toEqual(['could not clear']);
      expect(engine.state).toBe('starting');
      expect(await idIn(cursors)).toBe(null);

      await vi.advanceTimersByTimeAsync(99);
      expect(steps).toHaveLength(3);
      await vi.advanceTimersByTimeAsync(1);
      expect(steps.slice(3)).toEqual(['resync']);
      expect(messages()).toEqual(['could not clear', 'could not clear']);
      expect(fake.subscriptions).toHaveLength(1);

      await vi.advanceTimersByTimeAsync(100);
      const second = await fake.subscribed(2);
      expect(second.from).toBe('90');
      await vi.waitFor(() => expect(engine.state).toBe('live'));
      fake.push('91', messageEvent('c1', 10));
      await vi.waitFor(() =>
        expect(steps).toEqual([
          'snapshot 3',
          'message.new 4',
          'resync',
          'resync',
          'resync',
          'snapshot 90',
          'message.new 91',
        ]),
      );
      await vi.waitFor(async () => expect(await idIn(cursors)).toBe('91'));
      expect(messages()).toHaveLength(2);
      await engine.stop();
    });

    it('stop() resolves while an onResync handler keeps failing, in its backoff or in the handler; start() then goes on cold', async () => {
      vi.useFakeTimers();
      const fake = fakeTransport([snapshotOf('3'), snapshotOf('90')]);
      // A backoff longer than vi.waitFor moves the fake clock: only stop() can end it here.
      const engine = createSyncEngine({
        transport: fake.transport,
        backoff: { minDelayMs: 60_000, maxDelayMs: 60_000 },
        random: () => 1,
      });
      const { messages } = errorsOf(engine);
      const steps: string[] = [];
      let fail = () => undefined as void;
      engine.onResync(
        () =>
          new Promise<void>((_, reject) => {
            steps.push('resync');
            fail = () => reject(new Error('could not clear'));
          }),
      );
      engine.onSnapshot((s) => void steps.push(`snapshot ${s.cursor}`));
      await engine.start();

      fake.push('80', { type: 'resync' });
      await vi.waitFor(() => expect(steps).toEqual(['snapshot 3', 'resync']));
      fail();
      await vi.waitFor(() => expect(messages()).toEqual(['could not clear']));
      await engine.stop(); // in the backoff
      expect(engine.state).toBe('stopped');

      // The cursor went with the resync: the next start is cold, and live.
      await engine.start();
      expect(engine.state).toBe('live');
      expect(fake.subscriptions.map((s) => s.from)).toEqual(['3', '90']);
      expect(steps).toEqual(['snapshot 3', 'resync', 'snapshot 90']);

      fake.push('91', { type: 'resync' });
      await vi.waitFor(() => expect(steps.at(-1)).toBe('resync'));
      let stopped = false;
      void engine.stop().then(() => (stopped = true)); // in the handler, which then fails
      fail();
      await vi.waitFor(() => expect(stopped).toBe(true));
      expect(engine.state).toBe('stopped');
      expect(messages()).toEqual(['could not clear', 'could not clear']);
      expect(steps).toHaveLength(4);
    });

    it('an event this SDK cannot decode is reported and met as a resync; nothing after it comes before the snapshot', async () => {
      const fake = fakeTransport([snapshotOf('3'), snapshotOf('90')]);
      const cursors = createMemoryCursorStore();
      const engine = createSyncEngine({ transport: fake.transport, cursorStore: cursors });
      const { messages } = errorsOf(engine);
      const steps: string[] = [];
      engine.onResync(() => void steps.push('resync'));
      engine.onSnapshot((s) => void steps.push(`snapshot ${s.cursor}`));
      engine.onEvent((e, info) => void steps.push(`${e.type} ${info.id}`));
      await engine.start();

      const { message } = messageEvent('c1', 2) as { message: object };
      fake.push('4', messageEvent('c1', 1));
      fake.push('5', wire({ type: 'message.new', message: { ...message, ciphertext: 'AA*=' } }));
      fake.push('6', messageEvent('c1', 3)); // after it in the stream given up: the snapshot covers it
      const second = await fake.subscribed(2);
      expect(second.from).toBe('90');
      await vi.waitFor(() => expect(engine.state).toBe('live'));
      fake.push('91', messageEvent('c1', 4));
      await vi.waitFor(() =>
        expect(steps).toEqual([
          'snapshot 3',
          'message.new 4',
          'resync',
          'snapshot 90',
          'message.new 91',
        ]),
      );
      await vi.waitFor(async () => expect(await idIn(cursors)).toBe('91'));
      expect(messages()).toEqual(['base64: invalid character']);
      await engine.stop();
    });

    it('an ephemeral event this SDK cannot decode is reported and dropped: no resync', async () => {
      const fake = fakeTransport([snapshotOf('3')]);
      const engine = createSyncEngine({ transport: fake.transport });
      const { messages } = errorsOf(engine);
      const steps: string[] = [];
      engine.onResync(() => void steps.push('resync'));
      engine.onEvent((e, info) => void steps.push(`${e.type} ${info.id}`));
      await engine.start();

      const { message } = messageEvent('c1', 1) as { message: object };
      fake.push('3', wire({ type: 'typing', message: { ...message, ciphertext: 'AA*=' } }));
      fake.push('4', messageEvent('c1', 1));
      await vi.waitFor(() => expect(steps).toEqual(['message.new 4']));
      expect(messages()).toEqual(['base64: invalid character']);
      expect(fake.subscriptions).toHaveLength(1);
      expect(fake.snapshotCalls()).toBe(1);
      await engine.stop();
    });

    it('a listener that throws, or an event the unread counts cannot read, is reported; each event is handed over once and saved', async () => {
      const fake = fakeTransport([snapshotOf('0')]);
      const cursors = createMemoryCursorStore();
      const engine = createSyncEngine({ transport: fake.transport, cursorStore: cursors });
      engine.onError(() => {
        throw new Error('an onError listener failed');
      });
      const { errors, messages } = errorsOf(engine);
      engine.onUnreadChange(() => {
        throw new Error('an onUnreadChange listener failed');
      });
      const app = recorder();
      engine.onEvent(app.handler);
      await engine.start();

      fake.push('1', messageEvent('c1', 1)); // unread 0 -> 1
      fake.push('2', wire({ type: 'message.new' })); // no message to count
      fake.push('3', messageEvent('c1', 2)); // unread 1 -> 2
      await vi.waitFor(async () => expect(await idIn(cursors)).toBe('3'));
      expect(app.seen.map((e) => e.id)).toEqual(['1', '2', '3']);
      expect(engine.unread('c1')).toBe(2);
      expect(messages()[0]).toBe('an onUnreadChange listener failed');
      expect(errors[1]).toBeInstanceOf(TypeError);
      expect(messages()[2]).toBe('an onUnreadChange listener failed');
      expect(errors).toHaveLength(3);
      await engine.stop();
    });
  });
});
