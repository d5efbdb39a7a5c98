/**
 * Disappearing messages go at their time on this device too, as in Signal, whose clients keep
 * the timer themselves: the server's removal (`messages.removed`, reason `expired`) reaches only
 * a connected device of a current member, so a device offline, or someone who left the group,
 * would otherwise keep showing them. Times are the server's (`expiresAt`), read on this device's
 * clock through the offset measured against `system.info`'s `serverTime`.
 */
import type { Message, SyncEvent } from './messaging';
import type { Subscription } from './syncTypes';

export type ExpiredMessage = { conversationId: string; seq: number; messageId: string };

export type MvpExpiry = {
  /**
   * A disappearing message's time came (by the server's clock), whether or not this device is
   * connected: remove it from view and storage. When connected, the server's own removal
   * (`messages.removed` with reason `expired`) comes on the stream as well: handle both as one.
   */
  onExpired(handler: (expired: ExpiredMessage) => void): Subscription;
  /**
   * Watches a message the app loaded from its own storage (after a restart). Messages from the
   * stream and from `messaging.messages.history` are watched already.
   */
  watch(message: Pick<Message, 'id' | 'conversationId' | 'seq' | 'expiresAt'>): void;
  /** The server's clock minus this device's, in ms (0 before the first measurement). */
  readonly clockOffsetMs: number;
};

/** Messages watched at most: past it the one due last is left to the server's removal. */
export const MAX_WATCHED = 10_000;
/** The offset is measured again at most this often (when a timer is set). */
const REMEASURE_MS = 3600 * 1000;
const MEASURE_RETRY_MS = 60 * 1000;
/**
 * The timer is set a minute ahead at most: a device asleep stops monotonic timers too, and
 * expiries due meanwhile are then handed over within a minute of waking.
 */
const MAX_TIMER_MS = 60 * 1000;
/** The wall clock and the monotonic one this far apart: asleep, or the clock was set. */
const MAX_DRIFT_MS = 60 * 1000;

export function createExpiry(deps: {
  /** The server's time now (ISO), from `system.info`. */
  serverTime: () => Promise<string>;
  /** Told of each expiry: the unread counts drop it, as the server's removal would. */
  expired: (conversationId: string, seq: number) => void;
  report: (error: unknown) => void;
}): {
  expiry: MvpExpiry;
  observe: (event: SyncEvent) => void;
  reset: () => void;
  /** The server's time now, as this device reads it (ms). */
  serverNow: () => number;
} {
  // Elapsed time from a monotonic clock: the device's wall clock may be set forward or back
  // (by the user, or a sync) and must not move the timers. But a monotonic clock stops while
  // the device sleeps, which the wall clock does not: when they part, the server is asked
  // again; when it cannot be, the larger of the two counts (late is the worse failure for a
  // disappearing message). A runtime without `performance.now` uses the wall clock alone.
  const mono = () =>
    typeof performance === 'undefined' || typeof performance.now !== 'function'
      ? Date.now()
      : performance.now();
  const handlers = new Set<(expired: ExpiredMessage) => void>();
  /** By `conversation \n seq`: the message and when it goes, in server time (ms). */
  const watched = new Map<string, { expired: ExpiredMessage; at: number }>();
  /** The server's time at a point of both clocks; the device's own until measured. */
  let base = { server: Date.now(), mono: mono(), wall: Date.now() };
  const drifted = () => Math.abs(Date.now() - base.wall - (mono() - base.mono)) > MAX_DRIFT_MS;
  const serverNow = () =>
    base.server + Math.max(mono() - base.mono, drifted() ? Date.now() - base.wall : 0);
  let measuredAt: number | undefined;
  /** When the server was last asked because the clocks parted (monotonic ms). */
  let driftAskedAt = -Infinity;
  let measuring: Promise<void> | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let timerAt: number | undefined;

  const keyOf = (conversationId: string, seq: number) => `${conversationId}\n${seq}`;

  /** Server time as the midpoint of the call: the answer's time is unknown within it. */
  function measure() {
    measuring ??= (async () => {
      const sent = mono();
      const server = Date.parse(await deps.serverTime());
      const received = mono();
      if (Number.isNaN(server)) throw new Error('@mvp/sdk: the server answered no time');
      const middle = (sent + received) / 2;
      base = { server, mono: middle, wall: Date.now() - (received - middle) };
      measuredAt = received;
    })()
      .catch((error: unknown) => {
        deps.report(error);
        // Offline, say: the time stays as it was (the device's own clock before any) until
        // another try a minute from now.
        measuredAt = mono() - REMEASURE_MS + MEASURE_RETRY_MS;
      })
      .finally(() => {
        measuring = undefined;
        // The offset moved every time: the timer is set again from what is watched.
        if (timer) clearTimeout(timer);
        timer = timerAt = undefined;
        fire();
      });
  }

  /** Hands over what is due, then sets the timer for the earliest left (one pass). */
  function fire() {
    timer = timerAt = undefined;
    if (drifted() && mono() - driftAskedAt > MEASURE_RETRY_MS && watched.size > 0) {
      // Asleep, or the clock was set: ask the server before trusting either clock.
      driftAskedAt = mono();
      if (timer) clearTimeout(timer);
      measure(); // which calls this again
      return;
    }
    const current = serverNow();
    let earliest = Infinity;
    for (const [key, { expired, at }] of watched) {
      if (at > current) {
        earliest = Math.min(earliest, at);
        continue;
      }
      watched.delete(key);
      deps.expired(expired.conversationId, expired.seq);
      for (const handler of handlers) {
        try {
          handler(expired);
        } catch (error) {
          deps.report(error);
        }
      }
    }
    if (earliest < Infinity) schedule(earliest);
  }

  /**
   * One timer, for the earliest message watched (server time `at`), set only when `at` comes
   * before it: a message removed meanwhile leaves it as it is, and it then fires for nothing.
   */
  function schedule(at: number) {
    if (measuredAt === undefined || mono() - measuredAt > REMEASURE_MS) {
      if (!measuring) measure(); // which sets the timer again with the time it finds
      if (measuredAt === undefined) return;
    }
    if (timerAt !== undefined && timerAt <= at) return;
    if (timer) clearTimeout(timer);
    timerAt = at;
    timer = setTimeout(fire, Math.min(Math.max(0, at - serverNow()), MAX_TIMER_MS));
    // A timer must not keep a Node process (a bot, a test) alive on its own.
    (timer as { unref?: () => void }).unref?.();
  }

  function watch(message: Pick<Message, 'id' | 'conversationId' | 'seq' | 'expiresAt'>) {
    const key = keyOf(message.conversationId, message.seq);
    const at = message.expiresAt === null ? NaN : Date.parse(message.expiresAt);
    if (Number.isNaN(at)) {
      watched.delete(key); // no longer disappearing
      return;
    }
    watched.set(key, {
      expired: { conversationId: message.conversationId, seq: message.seq, messageId: message.id },
      at,
    });
    if (watched.size > MAX_WATCHED) {
      let last: string | undefined;
      let lastAt = -Infinity;
      for (const [k, w] of watched) if (w.at > lastAt) [last, lastAt] = [k, w.at];
      watched.delete(last!);
    }
    schedule(at);
  }

  const expiry: MvpExpiry = {
    onExpired(handler) {
      handlers.add(handler);
      return { unsubscribe: () => void handlers.delete(handler) };
    },
    watch,
    get clockOffsetMs() {
      return Math.round(serverNow() - Date.now());
    },
  };
  return {
    expiry,
    serverNow,
    // Another account signed in on this client: its messages are not the last one's.
    reset() {
      watched.clear();
      if (timer) clearTimeout(timer);
      timer = timerAt = undefined;
    },
    observe: (event) => {
      if (event.type === 'message.new' || event.type === 'message.updated') {
        // A tombstone has nothing left to remove.
        if (event.message.deletedAt !== null)
          watched.delete(keyOf(event.message.conversationId, event.message.seq));
        else watch(event.message);
      } else if (event.type === 'messages.removed') {
        for (const seq of event.seqs) watched.delete(keyOf(event.conversationId, seq));
      }
    },
  };
}
