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
    await kv.set(shownKey, shown, { ttlMs: SHOWN_TTL_MS });
    await announcePresence(ports, userId, state);
  };

  const announce = async (userId: string): Promise<void> => {
    if (trailing.has(userId)) return; // the pending send will carry this change too
    if (throttleMs > 0) {
      const key = `presence:throttle:${userId}`;
      const first = await kv.set(key, '1', { ttlMs: throttleMs, ifNotExists: true });
      if (!first) {
        if (stopping) return;
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
      // Users whose instances all stopped refreshing (killed, cut off): last seen at the last
      // refresh, which is the deadline minus the TTL.
      for (const { userId, lastDeadline } of await presence.sweep(now, SWEEP_BATCH)) {
        void serial(userId, () => wentOffline(userId, lastDeadline - ttlMs));
      }
    },

    idle,

    async stop() {
      stopping = true;
      for (const userId of [...counts.keys()]) {
        counts.set(userId, 1);
        disconnected(userId);
      }
      await idle();
      for (const timer of trailing.values()) clearTimeout(timer);
      trailing.clear();
    },
  };
}
