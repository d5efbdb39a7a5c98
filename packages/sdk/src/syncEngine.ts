import { createAcknowledgements } from './acknowledgements';
import { DEFAULT_BACKOFF, reconnectDelayMs } from './backoff';
import { classifySendError, errorCodeOf } from './errors';
import {
  decodeEvent,
  type Message,
  type RawSyncEvent,
  type Snapshot,
  type SyncEvent,
} from './messaging';
import { reportTo } from './reportTo';
import { createMemoryCursorStore, isAfter, readCursor, writeCursor } from './syncTransport';
import {
  EPHEMERAL_EVENT_TYPES,
  type EventInfo,
  type Subscription,
  type SyncControl,
  type SyncEngineOptions,
  type SyncState,
} from './syncTypes';
import type { Awaitable } from './types';
import { createUnreadTracker } from './unread';

type Queued = { id: string; data: RawSyncEvent };

/**
 * Events held for the app at most. Past it the subscription is dropped until they are handled
 * (see `onData`): the server waits for a slow reader's socket, but a WebSocket reads all it is
 * sent, so a slow or failing handler would otherwise have a long backlog held here in full.
 */
export const QUEUE_CAP = 1000;
/** Handled envelopes are acknowledged at least this often in a long run of events. */
const ACK_EVERY = 100;

export function createSyncEngine(options: SyncEngineOptions): SyncControl {
  const { transport } = options;
  const cursors = options.cursorStore ?? createMemoryCursorStore();
  const backoff = options.backoff ?? DEFAULT_BACKOFF;

  type Handler<A extends unknown[]> = (...args: A) => Awaitable<void>;
  const eventHandlers = new Set<Handler<[SyncEvent, EventInfo]>>();
  const snapshotHandlers = new Set<Handler<[Snapshot]>>();
  const resyncHandlers = new Set<Handler<[]>>();
  const errorHandlers = new Set<(error: unknown) => void>();
  const unreadHandlers = new Set<(id: string, unread: number) => void>();
  const observers = new Set<(event: SyncEvent) => void>();
  const startedWaiters = new Set<() => void>();
  const listen = <T>(set: Set<T>, handler: T): Subscription => {
    set.add(handler);
    return { unsubscribe: () => void set.delete(handler) };
  };
  const report = (error: unknown) => reportTo(errorHandlers, error);

  const unread = createUnreadTracker(
    () => me,
    (id, n) => {
      for (const handler of unreadHandlers) {
        try {
          handler(id, n);
        } catch (error) {
          report(error); // the counts and the stream go on
        }
      }
    },
  );

  let state: SyncState = 'idle';
  /** Bumped by every (re)subscription and stop: callbacks of an older one are ignored. */
  let generation = 0;
  let subscription: { unsubscribe(): void } | undefined;
  let starting: Promise<void> | undefined;
  let me: string | undefined;
  /** Whose stream this engine last started: the owner of the cursors it saves. */
  let streamedFor: string | undefined;
  /** The last durable event handled (and saved); duplicates at or below it are dropped. */
  let handled: string | null = null;
  let queue: Queued[] = [];
  /** The generation whose subscription was dropped at `QUEUE_CAP`: resumed once drained. */
  let overflowed = -1;
  let pumping = false;
  let idle: Promise<void> = Promise.resolve();
  /** Envelopes and messages handled, told to the server once the queue is drained. */
  const acks = createAcknowledgements({
    transport,
    streamed: () => streamedFor,
    report,
    deliveryReceipts: options.deliveryReceipts ?? true,
    markDelayMs: options.deliveryReceiptDelayMs ?? 500,
  });
  const noteHandledEnvelope = (id: string) => {
    if (streamedFor !== undefined) acks.envelope(id, streamedFor);
  };
  const noteDelivered = ({ conversationId, seq, senderId }: Message) => {
    if (streamedFor !== undefined && senderId !== streamedFor)
      acks.message(conversationId, seq, streamedFor);
  };
  /** The snapshot's newest message of each conversation, where it is past my delivered position. */
  const noteDeliveredIn = (snapshot: Snapshot) => {
    for (const { lastMessage, deliveredSeq } of snapshot.conversations)
      if (lastMessage && lastMessage.seq > deliveredSeq) noteDelivered(lastMessage);
  };
  let attempt = 0;
  let handlerFailures = 0;
  let retryTimer: ReturnType<typeof setTimeout> | undefined;
  /**
   * Sets the backoff back to its start once a stream has stayed up this long. Not at `started`:
   * the server answers that before its stream reads anything, so a stream that fails on its
   * first read (a row it cannot serve, the database down) would reconnect, with a snapshot,
   * every quarter second for as long as the fault lasts.
   */
  const lastedMs = Math.min(backoff.maxDelayMs, 10_000);
  let lastedTimer: ReturnType<typeof setTimeout> | undefined;
  /** A fresh socket was asked for since the stream last started (see `refused`). */
  let renewedSinceStarted = false;
  let handlerWait: { timer: ReturnType<typeof setTimeout>; done: () => void } | undefined;

  /** The next reconnect's wait: the backoff's, or longer if the server said how long to wait. */
  const delay = (error: unknown) => {
    const verdict = classifySendError(error);
    const serverWait = verdict.retry ? (verdict.afterMs ?? 0) : 0;
    return Math.max(serverWait, reconnectDelayMs(attempt++, backoff, options.random));
  };
  const saveCursor = async (id: string | null) => {
    // Saved as a place in the stream it came from: after a sign-in, `me` may already be the next
    // account while the last one's event in hand is still being saved.
    const owner = streamedFor;
    try {
      await cursors.set(
        id === null || owner === undefined ? null : writeCursor({ userId: owner, id }),
      );
    } catch (error) {
      report(error); // the stream goes on; a restart may then repeat events since the last save
    }
  };

  /**
   * (Re)connects from the stored cursor, or cold: snapshot first, then the stream from its cursor.
   * The snapshot is loaded on a warm start too, only to seed the unread counts; the app keeps
   * its own state and is not handed it again. The events replayed from the older stored cursor
   * are in those counts already: the tracker tells them by id (at most the snapshot's cursor).
   * A stored cursor is resumed only in its owner's stream: one of another account (signed in
   * here before, in this run or an earlier one) or of no known account (kept by an older SDK)
   * names a place in someone else's stream, so that start is cold.
   */
  async function connect(gen: number, cold: boolean): Promise<void> {
    // Kept only if this start is still the current one: `stop()` (a sign-out) may have come
    // meanwhile, and the answer would then name the last account for the next start.
    const user = me ?? (await transport.whoAmI());
    if (gen !== generation) return;
    me = user;
    // The event in hand finishes and saves its cursor first. `idle` is replaced when a pump
    // starts again, so it is awaited until no pump runs.
    while (pumping) await idle;
    const kept = cold ? null : readCursor(await cursors.get());
    const stored = kept?.userId === me ? kept.id : null;
    // Envelopes handled before a cold start must be deleted before its snapshot lists what waits,
    // or they are handed over again.
    if (stored === null) await acks.settled(user);
    const snapshot = await transport.snapshot();
    if (gen !== generation) return;
    // Events after the one handled last stay the only ones delivered, however far back the
    // stream resumes; another account's stream starts from its own cursor.
    const sameStream = streamedFor === me;
    streamedFor = me;
    acks.keepOnly(me); // the last account's must not go out under this one's token
    unread.reset(snapshot);
    let from = stored;
    if (from === null) {
      // Handed over as the pump hands events: `stop()` and the next start wait for what is in
      // hand, so nothing is handed over twice, or alongside the next start's.
      await occupy(async () => {
        for (const handler of snapshotHandlers) await handler(snapshot);
        if (gen !== generation) return;
        await deliverPendingEnvelopes(gen, snapshot);
      });
      if (gen !== generation) return;
      // Saved only once every waiting envelope is handled: the server lists them only in a cold
      // start's snapshot, so a warm start would never hand them over.
      from = snapshot.cursor;
      await saveCursor(from);
      if (gen !== generation) return; // stopped while it was saved: no stream after stop()
    }
    // The snapshot's newest messages reached this device. On a warm start they also stand in
    // for a mark lost with the last run (closed, or signed out): its events are behind the cursor.
    noteDeliveredIn(snapshot);
    acks.flush();
    handled = sameStream && handled !== null && isAfter(handled, from) ? handled : from;
    queue = [];
    subscription = transport.subscribe(from, {
      onStarted: () => {
        if (gen !== generation) return;
        clearTimeout(lastedTimer);
        lastedTimer = setTimeout(() => {
          if (gen === generation) attempt = 0;
        }, lastedMs);
        renewedSinceStarted = false;
        state = 'live';
        for (const waiter of [...startedWaiters]) waiter();
        startedWaiters.clear();
      },
      onData: (value) => {
        if (gen !== generation || gen === overflowed) return;
        if (queue.length >= QUEUE_CAP) {
          // This event and every later one come again, after the cursor, from the subscription
          // `occupy` opens once the queue is handled. None is taken meanwhile: one taken after
          // a dropped one would move the cursor past it.
          overflowed = gen;
          subscription?.unsubscribe();
          subscription = undefined;
          return;
        }
        queue.push(value);
        void pump(gen);
      },
      onError: (error) => {
        if (gen !== generation) return;
        const code = errorCodeOf(error);
        // A cursor the server refuses outright (corrupt in the store, or from another server)
        // cannot be resumed from: a resync, after the events already queued.
        if (code === 'BAD_REQUEST') {
          report(error);
          queue.push({ id: handled ?? '0', data: { type: 'resync' } });
          return pump(gen);
        }
        if (code === 'UNAUTHORIZED') return refused(error);
        reconnect({ cold: false, error });
      },
      // The server ended the stream without an error (it should not): resume after a pause.
      onComplete: () => {
        if (gen === generation && state !== 'stopped') reconnect({ cold: false });
      },
    });
  }

  /** Runs `connect` until it succeeds; network and server failures are retried with backoff. */
  function run(cold: boolean): Promise<void> {
    const gen = ++generation;
    clearTimeout(lastedTimer);
    leaveLive();
    subscription?.unsubscribe();
    subscription = undefined;
    queue = []; // what the last subscription queued comes again from this one, after the cursor
    return connect(gen, cold).catch((error: unknown) => {
      if (gen !== generation) return;
      if (errorCodeOf(error) === 'UNAUTHORIZED') return fail(error);
      reconnect({ cold, error });
    });
  }

  /**
   * The stream refused UNAUTHORIZED. Most often the socket's own token expired while the session
   * lives on (a socket authenticates once, when it opens): the transport opens a fresh one and the
   * stream resumes, once per start of the stream. Otherwise the session is over.
   */
  function refused(error: unknown) {
    if (renewedSinceStarted || !transport.renewConnection) return fail(error);
    const gen = generation;
    void transport
      .renewConnection()
      .catch(() => false)
      .then((renewed) => {
        if (gen !== generation) return;
        if (!renewed) return fail(error);
        renewedSinceStarted = true;
        reconnect({ cold: false });
      });
  }

  /**
   * A new subscription is on its way: `start()` from here answers once it is live (the promise
   * it answered while the last one was live has resolved already).
   */
  function leaveLive() {
    if (state === 'live') starting = undefined;
    state = 'starting';
  }

  function reconnect({ cold, error }: { cold: boolean; error?: unknown }) {
    if (error !== undefined) report(error);
    const gen = ++generation;
    clearTimeout(lastedTimer);
    subscription?.unsubscribe();
    subscription = undefined;
    // The event in hand finishes; the rest come again from the next subscription, after the
    // cursor it then saves. Handed over from here they could race that subscription's start.
    queue = [];
    leaveLive();
    clearTimeout(retryTimer);
    retryTimer = setTimeout(() => {
      if (gen === generation) void run(cold);
    }, delay(error));
  }

  /** For good: the session is over. `start()` tries again (e.g. after signing in). */
  function fail(error: unknown) {
    void halt();
    report(error);
  }

  function halt() {
    generation++;
    state = 'stopped';
    renewedSinceStarted = false;
    // A start() still waiting for the stream learns it stopped first (it rejected never before).
    for (const waiter of [...startedWaiters]) waiter();
    startedWaiters.clear();
    me = undefined; // the next start may be another account's (after signing in again)
    starting = undefined;
    subscription?.unsubscribe();
    subscription = undefined;
    clearTimeout(retryTimer);
    clearTimeout(lastedTimer);
    handlerWait?.done();
    queue = [];
    // Marks still waiting go out now (as their account; refused if someone else signed in).
    return idle.then(() => acks.flush({ now: true }));
  }

  /**
   * Delivers queued events one at a time; the only place the cursor moves forward. An event
   * whose handler finished is saved even if the stream stopped or reconnected meanwhile (the app
   * has it); `connect` waits for this (`idle`) before it reads the cursor, so nothing repeats.
   */
  function pump(gen: number) {
    if (pumping) return;
    void occupy(() =>
      drain(gen).catch((error: unknown) => {
        // Not a handler's failure (those are retried in `drain`): a fault of the engine's own.
        // The queue may hold its cause, so the stream resumes from the saved cursor instead.
        queue = [];
        if (state === 'stopped') report(error);
        else reconnect({ cold: false, error });
      }),
    );
  }

  /**
   * Runs `work` as the one thing handing the app anything (`pumping`): `stop()` and the next
   * `connect` wait for it (`idle`). Its failure is the caller's; `idle` never rejects: `stop()`
   * answers it, and a rejection nobody awaits is unhandled.
   */
  function occupy(work: () => Promise<void>): Promise<void> {
    pumping = true;
    const done = work().finally(() => {
      pumping = false;
      // Events of a newer subscription may have queued while this (older) work was busy.
      if (queue.length > 0) return pump(generation);
      acks.flush();
      if (overflowed === generation) void run(false); // warm, from the cursor just saved
    });
    idle = done.catch(() => undefined);
    return done;
  }

  async function drain(gen: number) {
    let noted = 0;
    while (gen === generation && queue.length > 0) {
      const current = queue; // `connect` swaps in a fresh queue for a new subscription
      const { id, data } = current[0]!;
      if (data.type === 'resync') return resync();
      const ephemeral = EPHEMERAL_EVENT_TYPES.has(data.type);
      if (!ephemeral && handled !== null && !isAfter(id, handled)) {
        current.shift(); // seen before (a reconnect raced the backlog): delivered already
        continue;
      }
      let event: SyncEvent;
      try {
        event = decodeEvent(data);
      } catch (error) {
        // The server sent what this SDK cannot read, and reading it again gives the same: it is
        // reported and met as a resync (the app is told, and a snapshot covers it) rather than
        // stalling the stream on it or skipping it unannounced. An ephemeral one is only
        // reported: it is never replayed, so a snapshot would not bring it back either.
        report(error);
        if (!ephemeral) return resync();
        current.shift();
        continue;
      }
      const delivered = await handOver(gen, async () => {
        for (const handler of eventHandlers) await handler(event, { id, ephemeral });
      });
      if (!delivered) continue; // the same event again, unless stopped meanwhile
      current.shift();
      try {
        // Not after a stop: the counts may have been forgotten for an account change meanwhile,
        // and the next start's snapshot counts this event anyway.
        if (gen === generation) unread.apply(event, id);
      } catch (error) {
        report(error); // an event of a shape the counts cannot read: the app has it all the same
      }
      for (const observer of observers) {
        try {
          observer(event);
        } catch (error) {
          report(error);
        }
      }
      if (ephemeral) continue;
      handled = id;
      await saveCursor(id);
      if (event.type === 'envelope') noteHandledEnvelope(id);
      // Typed as always there; a server bug could leave it out, and the stream must go on.
      else if (event.type === 'message.new' && event.message) noteDelivered(event.message);
      // Not only once drained: an app closed in a long backlog would leave the envelopes it
      // handled on the server, counted against the device's queue, handed over again cold.
      if (++noted % ACK_EVERY === 0) acks.flush();
    }
  }

  /**
   * Runs the app's handlers for one thing handed over: the one way their failures are met. A
   * failure is reported and answers false after a backoff (which `stop()` cuts short; none once
   * `gen` is over), for the caller to hand the same thing again, so nothing after it goes first.
   */
  async function handOver(gen: number, deliver: () => Promise<void>): Promise<boolean> {
    try {
      await deliver();
    } catch (error) {
      report(error);
      if (gen === generation) {
        await pause(reconnectDelayMs(handlerFailures++, backoff, options.random));
      }
      return false;
    }
    handlerFailures = 0;
    return true;
  }

  /**
   * A cold start begins at the snapshot's cursor, so envelopes that waited for this device from
   * before it (sent while the app was closed, with no saved cursor) come with the snapshot: they
   * are handled like stream events (a handler that throws gets the same one again after a
   * backoff), then acknowledged up to the last one handled. Stopped meanwhile, the one in hand
   * finishes (`stop()` waits for it) and the rest wait on the server for the next start, which is
   * cold again (`connect` has not saved the cursor).
   * One this SDK cannot read (only a server bug makes one) is reported and passed over, so it
   * is acknowledged with the next: held back, it would fail every start from now on.
   * A snapshot carries about 1 MiB of them; when it says there are more (`moreEnvelopes`), the
   * rest are read a page at a time before the stream starts. A page that cannot be read fails
   * this start; the next (cold again) lists what is still unacknowledged.
   */
  async function deliverPendingEnvelopes(gen: number, snapshot: Snapshot): Promise<void> {
    let page = snapshot.pendingEnvelopes;
    let more = snapshot.moreEnvelopes === true;
    try {
      for (;;) {
        for (const waiting of page) {
          if (gen !== generation) return;
          if (!(await deliverWaiting(gen, waiting))) return;
        }
        const last = page.at(-1);
        if (!more || !last || gen !== generation) return;
        ({ envelopes: page, more } = await transport.pendingEnvelopes(last.id, snapshot.cursor));
      }
    } finally {
      acks.flush();
    }
  }

  /** One waiting envelope handed over; false when stopped before it was. */
  async function deliverWaiting(
    gen: number,
    { id, envelope }: Snapshot['pendingEnvelopes'][number],
  ): Promise<boolean> {
    let event: SyncEvent;
    try {
      event = decodeEvent({ type: 'envelope', envelope });
    } catch (error) {
      report(error);
      noteHandledEnvelope(id);
      return true;
    }
    const deliver = async () => {
      for (const handler of eventHandlers) await handler(event, { id, ephemeral: false });
    };
    while (!(await handOver(gen, deliver))) if (gen !== generation) return false;
    noteHandledEnvelope(id);
    return true;
  }

  /**
   * Runs inside `drain`: nothing else moves the cursor meanwhile. The `onResync` handlers are
   * handed it as an event is, again after a backoff until they succeed, and only then does the
   * cold start (snapshot, then the stream) begin. Stopped meanwhile, the next start is cold
   * without them (the cursor is gone), as after a restart: `onSnapshot` replaces the app's state.
   */
  async function resync() {
    const gen = ++generation; // what the old subscription still sends is void from here
    leaveLive();
    subscription?.unsubscribe();
    subscription = undefined;
    queue = [];
    handled = null;
    await saveCursor(null);
    unread.reset(null);
    while (gen === generation) {
      const told = await handOver(gen, async () => {
        for (const handler of resyncHandlers) await handler();
      });
      if (!told) continue;
      if (gen !== generation) return;
      // The first cold start goes at once. Another resync before a stream lasted (a server that
      // refuses the cursor it has just given) waits out the backoff, as a reconnect does.
      if (attempt === 0) {
        attempt++;
        void run(true);
      } else {
        clearTimeout(retryTimer);
        retryTimer = setTimeout(() => {
          if (gen === generation) void run(true);
        }, delay(undefined));
      }
      return;
    }
  }

  const pause = (ms: number) =>
    new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        handlerWait = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      handlerWait = { timer, done };
    });

  const stop = async () => {
    await halt();
  };

  const start = (): Promise<void> => {
    if (state === 'live') return Promise.resolve();
    starting ??= new Promise<void>((resolve, reject) => {
      const waiter = () => {
        startedWaiters.delete(waiter);
        if (state === 'live') resolve();
        else reject(new Error('@mvp/sdk: the sync stream stopped before it started'));
      };
      startedWaiters.add(waiter);
      if (state !== 'starting') void run(false);
    });
    return starting;
  };

  return {
    start,
    stop,
    get state() {
      return state;
    },
    onEvent(handler, opts = {}) {
      const sub = listen(eventHandlers, handler);
      if (opts.onStarted) {
        const given = opts.onStarted;
        // The app's callback: a throw is reported, as a handler's is, not left unhandled.
        const onStarted = () => {
          try {
            given();
          } catch (error) {
            report(error);
          }
        };
        if (state === 'live') onStarted();
        else start().then(onStarted, () => undefined);
      } else if (state === 'idle' || state === 'stopped') {
        start().catch(() => undefined); // failures reach onError
      }
      return sub;
    },
    onSnapshot: (handler) => listen(snapshotHandlers, handler),
    onResync: (handler) => listen(resyncHandlers, handler),
    onError: (handler) => listen(errorHandlers, handler),
    report,
    unread: (conversationId) => unread.get(conversationId),
    unreadTotal: () => unread.total(),
    onUnreadChange: (handler) => listen(unreadHandlers, handler),
    observe: (observer) => listen(observers, observer),
    expired(conversationId, seq) {
      unread.apply({ type: 'messages.removed', conversationId, seqs: [seq], reason: 'expired' });
    },
    accountChanged() {
      const stopped = halt();
      unread.reset(null);
      return stopped;
    },
  };
}
