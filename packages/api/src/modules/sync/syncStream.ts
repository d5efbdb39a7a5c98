import { tracked, type TrackedEnvelope } from '@trpc/server';
import type { TSyncEvent } from '@mvp/contracts';
import type { Connection, Context } from '../../context';
import { AppError } from '../../errors/AppError';
import { userChannel } from '../contacts/peopleEvents';
import { share } from '../../sharedEvents';
import { hydrate, sharedCarried, type CarriedEntry } from './events';
import { readEvents, streamBounds } from './stream.repo';

const PAGE = 200;
/** "Read the stream": a wake-up without entries, the first pass, the periodic re-read. */
const READ = Symbol('read');
/** Ephemeral events travel on the bus only and are never replayed. */
const EPHEMERAL = new Set(['presence', 'typing', 'call.signal']);
/** Bus messages a stream may hold queued; past it, they are dropped and the stream read again. */
const INBOX_CAP = 1000;
/** Event streams one connection may hold open at once (the SDK opens one). */
const STREAMS_PER_CONNECTION = 4;

/** What a user's bus channel carries: wake-ups (some with the event) and ephemeral events. */
type BusMessage = { type: string; toDeviceId?: string; entries?: CarriedEntry[] };

/** Cursors are the decimal seq of the user's stream; anything else is refused. */
export function parseCursor(id: string | null | undefined): number | null {
  if (id === null || id === undefined) return null;
  if (!/^\d{1,15}$/.test(id)) throw new AppError('BAD_REQUEST', 'Unknown event id');
  return Number(id);
}

/**
 * Where a reader starts: after its cursor, or now on a cold start (the app loaded the snapshot).
 * A cursor from before what is kept, or ahead of the stream (another database), is answered
 * with `resync` from now: never a silent skip.
 */
export function startOf(
  bounds: { first: number; last: number },
  lastEventId: string | null | undefined,
): { cursor: number; resync: boolean } {
  const cursor = parseCursor(lastEventId);
  if (cursor === null) return { cursor: bounds.last, resync: false };
  if (cursor < bounds.first - 1 || cursor > bounds.last)
    return { cursor: bounds.last, resync: true };
  return { cursor, resync: false };
}

/**
 * Whether pruning deleted rows after `cursor` before this read reached them (the stream's
 * `first_seq` moved past it): the reader must resync, or it would skip them silently. Checked
 * only when the page has rows and does not start right after the cursor (other devices' rows
 * make ordinary gaps too): an empty page moves no cursor, and the next one with rows is checked.
 * A reader at the head pays nothing for it.
 */
export async function prunedPast(
  ctx: Context,
  userId: string,
  cursor: number,
  rows: { seq: number }[],
): Promise<number | null> {
  if (rows.length === 0 || rows[0]!.seq === cursor + 1) return null;
  const bounds = await streamBounds(ctx.ports.db, userId);
  return bounds && bounds.first > cursor + 1 ? bounds.last : null;
}

/**
 * One device's stream: every durable event after `lastEventId` read from the database, then live
 * ones as they are committed, each as `tracked(seq, event)`. The bus subscription starts before
 * the first read and only says "read again", so an event committed while the backlog is being
 * read is read on the next pass: no gap, and the cursor never moves back, so no duplicate.
 * A wake-up that carries what a transaction appended, starting at exactly `cursor + 1`, is
 * yielded without a read (a live device at the head, the common case); a gap falls back to
 * reading. Another device's rows in it only move the cursor, as a read would skip them.
 * Ephemeral events carry the current cursor as their id, so resuming from one is still exact,
 * and come in the order the bus brought them among the wake-ups (one queue for both).
 * Every event is plain JSON (the contracts have no dates or other types superjson annotates), so
 * each goes out through the shared path of sharedEvents.ts, without superjson's walk.
 */
export function syncStream(
  ctx: Context,
  device: Device,
  lastEventId: string | null | undefined,
  signal: AbortSignal | undefined,
): AsyncGenerator<TrackedEnvelope<TSyncEvent>> {
  // Refused here, before tRPC tells the client the stream started (it does so before it asks
  // the generator for anything): a malformed id, or one stream too many.
  parseCursor(lastEventId);
  refuseCrowding(ctx.connection);
  return streamOf(ctx, device, lastEventId, signal);
}

type Device = { userId: string; deviceId: string; sessionId: string };

function refuseCrowding(connection: Connection | null): void {
  if (connection && connection.streams >= STREAMS_PER_CONNECTION)
    throw new AppError('TOO_MANY_REQUESTS', 'Too many event streams on this connection', {
      retryAfterMs: 1000,
    });
}

async function* streamOf(
  ctx: Context,
  device: Device,
  lastEventId: string | null | undefined,
  signal: AbortSignal | undefined,
): AsyncGenerator<TrackedEnvelope<TSyncEvent>> {
  const { userId, deviceId } = device;
  const { connection } = ctx;
  // Counted in once it runs (a generator tRPC drops unstarted never reaches its `finally`), and
  // checked again: two opened at once both passed the check above.
  refuseCrowding(connection);
  // What the bus brought, in the order it came: an ephemeral event, a wake-up's carried
  // entries, or READ ("read the stream"). One queue, so a typing event or a call's ICE candidate
  // never overtakes a durable event woken before it.
  const inbox: (TSyncEvent | CarriedEntry[] | typeof READ)[] = [READ];
  // Resolves the loop's wait; set only while it waits. Abort resolves it too, so one waiting
  // promise per wait and nothing that accumulates on a long-lived stream.
  let wake: (() => void) | undefined;
  const rouse = () => {
    const resolve = wake;
    wake = undefined;
    resolve?.();
  };
  // A slow reader's backlog stays in the database: before each event, the stream waits while its
  // connection holds more than this (see Connection in context.ts).
  const high = ctx.settings.messaging.streamBufferBytes;
  const full = () => connection !== null && connection.buffered() > high;
  const waitForReader = async () => {
    ctx.ports.metrics.streamWaiting(true);
    try {
      await connection!.drained(signal);
    } finally {
      ctx.ports.metrics.streamWaiting(false);
    }
  };
  const queue = (item: (typeof inbox)[number]) => {
    if (inbox.length >= INBOX_CAP) {
      // Far behind its bus (a slow reader, a slow database): what is durable is read again
      // from the database instead, and the ephemeral events queued are dropped (they are at
      // most once anyway). A stream's memory stays bounded however long it waits.
      inbox.length = 0;
      inbox.push(READ);
      ctx.ports.metrics.streamOverflowed();
    }
    inbox.push(item);
    rouse();
  };
  const onBus = (message: unknown) => {
    const m = message as BusMessage;
    if (EPHEMERAL.has(m.type)) {
      if (!m.toDeviceId || m.toDeviceId === deviceId) {
        const { toDeviceId: _, ...event } = m;
        queue(event as TSyncEvent);
      }
    } else if (Array.isArray(m.entries) && m.entries.length > 0) queue(m.entries);
    else queue(READ);
  };
  if (connection) connection.streams++;
  let unsubscribe: (() => Promise<void>) | undefined;
  // A revocation closes the socket at once, over the bus; the bus may lose that message (Redis
  // pub/sub is at most once), and a session's expiry is announced by nobody. So a stream also
  // asks now and then, and ends (UNAUTHORIZED) with its session. A wake-up may be lost the same
  // way (a publish that failed after its commit, an instance that died in between), so it
  // reads its stream again then too: a missed event is late by at most this interval.
  // Each stream keeps its own phase, its first check at a random point of the interval's second
  // half: streams opened together (every device reconnecting after a deploy) would otherwise
  // check together, every interval, for good: a session check and a read per stream at once,
  // which on the embedded database all run on the main thread.
  let checkSession = false;
  let sessionTimer: ReturnType<typeof setTimeout> | undefined;
  const every = ctx.settings.messaging.streamSessionCheckMs;
  const checkIn = (ms: number) => {
    sessionTimer = setTimeout(() => {
      checkSession = true;
      queue(READ);
      checkIn(every);
    }, ms);
    sessionTimer.unref();
  };
  try {
    unsubscribe = await ctx.ports.bus.subscribe(userChannel(userId), onBus);
    signal?.addEventListener('abort', rouse, { once: true });
    checkIn(every * (0.5 + Math.random() / 2));
    const bounds = await streamBounds(ctx.ports.db, userId);
    if (!bounds) throw new AppError('UNAUTHORIZED', 'Session ended');
    const start = startOf(bounds, lastEventId);
    let cursor = start.cursor;
    if (start.resync) yield tracked(String(cursor), { type: 'resync' });

    while (!signal?.aborted) {
      if (checkSession) {
        checkSession = false;
        const live = await ctx.ports.sessions.check(device.sessionId);
        if (live?.userId !== userId) {
          // Ended without the revocation reaching this socket (the bus lost it, or it came
          // while the socket signed in): the stream ends, and the socket with it.
          connection?.sessionEnded();
          throw new AppError('UNAUTHORIZED', 'Session ended');
        }
      }
      const next = inbox.shift();
      if (next === undefined) {
        await new Promise<void>((resolve) => (wake = resolve));
        continue;
      }
      if (next === READ) {
        // A read from now covers every READ queued before it; one that comes during it may
        // announce a commit the read missed, and stays.
        while (inbox[0] === READ) inbox.shift();
        for (;;) {
          const rows = await readEvents(ctx.ports.db, userId, deviceId, cursor, PAGE);
          const head = await prunedPast(ctx, userId, cursor, rows);
          if (head !== null) {
            cursor = head;
            yield tracked(String(cursor), { type: 'resync' });
            break;
          }
          const now = ctx.ports.clock.now();
          for (const { seq, event } of await hydrate(ctx.ports.db, userId, rows, now)) {
            if (full()) await waitForReader();
            if (signal?.aborted) return;
            yield tracked(String(seq), share(event));
          }
          if (rows.length > 0) cursor = rows.at(-1)!.seq;
          if (rows.length < PAGE) break;
        }
        continue;
      }
      if (full()) {
        // Before an ephemeral event or a wake-up's entries (a page's rows wait one by one).
        inbox.unshift(next);
        await waitForReader();
        continue;
      }
      if (!Array.isArray(next)) {
        yield tracked(String(cursor), share(next));
        continue;
      }
      // Entries this reader already has (read along with others) are skipped; the rest must
      // start right after the cursor, or there is a gap to read (these entries included).
      // (Usually none: then the batch itself, not a copy.)
      const fresh =
        next.length > 0 && next[0]!.seq > cursor
          ? next
          : next.filter((entry) => entry.seq > cursor);
      if (fresh.length > 0 && fresh[0]!.seq !== cursor + 1) inbox.unshift(READ);
      else {
        for (const entry of fresh) {
          cursor = entry.seq;
          if (!entry.deviceId || entry.deviceId === deviceId)
            yield tracked(String(entry.seq), sharedCarried(entry.event));
        }
      }
    }
  } finally {
    if (connection) connection.streams--;
    clearTimeout(sessionTimer);
    signal?.removeEventListener('abort', rouse);
    await unsubscribe?.();
  }
}
