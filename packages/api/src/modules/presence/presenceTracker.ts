import type { Ports } from '../../ports';
import { announcePresence, lastSeenOf, presenceOf, recordLastSeen } from './presence';

export type PresenceTrackerOptions = {
  /** This process, unique among the instances sharing the PresenceStore. */
  instanceId: string;
  /** How long this instance's entries live without a refresh. */
  ttlMs: number;
  /** At most one announced change per user per this long (0: no throttle). */
  throttleMs: number;
};

export type PresenceTracker = {
  /** A WebSocket of `userId` opened on this instance. */
  connected(userId: string): void;
  /** One of them closed. */
  disconnected(userId: string): void;
  /** Refreshes this instance's entries and expires users of dead instances; run every ttl / 3. */
  tick(): Promise<void>;
  /** Resolves once every update queued so far has run. */
  idle(): Promise<void>;
  /** Leaves for every user still counted, waits for pending updates and stops announcing. */
  stop(): Promise<void>;
};

const SWEEP_BATCH = 500;
/** Batches one tick sweeps at most: a dead instance's 10 000 users go in one tick, not 20. */
const SWEEP_BATCHES_PER_TICK = 20;
const SHOWN_TTL_MS = 24 * 3600 * 1000;

/**
 * One instance's view of who is connected to it. Only a user's first socket and last socket on
 * this instance reach the shared PresenceStore; the store decides whether that made the user
 * online or offline everywhere. Changes reach the user's audience through `announce`, which lets
 * one change per user through per throttle window (on every instance, via KeyValue) and sends the
 * state at the end of the window when more happened, so the last word is always the true one.
 */
export function createPresenceTracker(
  ports: Ports,
  options: PresenceTrackerOptions,
): PresenceTracker {
  const { presence, clock, kv, db, logger } = ports;
  const { instanceId, ttlMs, throttleMs } = options;
  const counts = new Map<string, number>();
  // Store calls for one user run in order, so a quick close-and-reopen cannot be reordered.
  const queues = new Map<string, Promise<void>>();
  const trailing = new Map<string, ReturnType<typeof setTimeout>>();
  let stopping = false;

  const serial = (userId: string, work: () => Promise<void>): Promise<void> => {
    const next = (queues.get(userId) ?? Promise.resolve())
      .then(work)
      .catch((err: unknown) => logger.warn({ err, userId }, 'presence update failed'));
    queues.set(userId, next);
    void next.then(() => {
      if (queues.get(userId) === next) queues.delete(userId);
    });
    return next;
  };

  /** Sends the current state unless the audience already has it (online/offline). */
  const publishCurrent = async (userId: string): Promise<void> => {
    const user = await lastSeenOf(db, userId);
    if (!user) return;
    const state = (await presenceOf(ports, [user])).get(userId)!;
    const shownKey = `presence:shown:${userId}`;
    const shown = state.online ? 'online' : 'offline';
    if ((await kv.get(shownKey)) === shown) return;
    // Noted as shown once it went out: noted first, a failed announcement kept every later
    // one of the same state quiet for a day, the audience left with the old one.
    await announcePresence(ports, userId, state);
    await kv.set(shownKey, shown, { ttlMs: SHOWN_TTL_MS });
  };

  const announce = async (userId: string): Promise<void> => {
    if (trailing.has(userId)) return; // the pending send will carry this change too
    // Stopping, the last word goes out now: a timer would die with the process.
    if (throttleMs > 0 && !stopping) {
      const key = `presence:throttle:${userId}`;
      const first = await kv.set(key, '1', { ttlMs: throttleMs, ifNotExists: true });
      if (!first) {
        const wait = (await kv.ttlMs(key)) ?? throttleMs;
        const timer = setTimeout(() => {
          trailing.delete(userId);
          void serial(userId, () => announce(userId));
        }, wait);
        timer.unref();
        trailing.set(userId, timer);
        return;
      }
    }
    await publishCurrent(userId);
  };

  const wentOffline = async (userId: string, lastSeenAt: number): Promise<void> => {
    await recordLastSeen(db, userId, lastSeenAt);
    await announce(userId);
  };

  /**
   * Users a sweep took from the store whose going offline failed to be recorded or told: the
   * store no longer lists them, so nothing else would try again. Each tick does.
   */
  const unswept = new Map<string, number>();
  const sweptOffline = (userId: string, lastSeenAt: number) =>
    serial(userId, () =>
      wentOffline(userId, lastSeenAt).then(
        () => void unswept.delete(userId),
        (err: unknown) => {
          unswept.set(userId, lastSeenAt);
          throw err;
        },
      ),
    );

  const idle = async (): Promise<void> => {
    while (queues.size > 0) await Promise.all([...queues.values()]);
  };

  const connected = (userId: string): void => {
    const count = (counts.get(userId) ?? 0) + 1;
    counts.set(userId, count);
    if (count > 1) return;
    void serial(userId, async () => {
      const now = clock.now();
      if (!(await presence.touch(userId, instanceId, now + ttlMs, now))) await announce(userId);
    });
  };

  const disconnected = (userId: string): void => {
    const count = (counts.get(userId) ?? 0) - 1;
    if (count > 0) {
      counts.set(userId, count);
      return;
    }
    counts.delete(userId);
    void serial(userId, async () => {
      // Reopened before this ran: the user never really left, so nothing to say.
      if (counts.has(userId)) return;
      const now = clock.now();
      if (await presence.leave(userId, instanceId, now)) await wentOffline(userId, now);
    });
  };

  return {
    connected,
    disconnected,

    async tick() {
      const now = clock.now();
      // Refresh first, so the sweep below never mistakes this instance's own users for gone.
      await Promise.all(
        [...counts.keys()].map((userId) =>
          serial(userId, async () => {
            if (!counts.has(userId)) return;
            // False when this instance's entry had lapsed (a long pause) and another instance
            // already announced the user offline: announce them back.
            const was = await presence.touch(userId, instanceId, now + ttlMs, now);
            if (!was) await announce(userId);
          }),
        ),
      );
      for (const [userId, lastSeenAt] of unswept) void sweptOffline(userId, lastSeenAt);
      // Users whose instances all stopped refreshing (killed, cut off): last seen at the last
      // refresh, which is the deadline minus the TTL.
      for (let batch = 0; batch < SWEEP_BATCHES_PER_TICK; batch++) {
        const gone = await presence.sweep(now, SWEEP_BATCH);
        for (const { userId, lastDeadline } of gone)
          void sweptOffline(userId, lastDeadline - ttlMs);
        if (gone.length < SWEEP_BATCH) break;
      }
    },

    idle,

    async stop() {
      stopping = true;
      // Changes held back by the throttle go out now, unthrottled: the timers holding them die
      // with this process, and the audience would keep the state before them (online) for good.
      for (const [userId, timer] of trailing) {
        clearTimeout(timer);
        void serial(userId, () => publishCurrent(userId));
      }
      trailing.clear();
      for (const userId of [...counts.keys()]) {
        counts.set(userId, 1);
        disconnected(userId);
      }
      await idle();
    },
  };
}
