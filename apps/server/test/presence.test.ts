import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { createPresenceTracker, type Clock, type Ports, type PresenceTracker } from '@mvp/api';
import { createMvpClient, type MvpClient } from '@mvp/sdk';
import {
  clientWithToken,
  DEVICE,
  PASSWORD,
  registerUser,
  signInOnAnotherDevice,
  type Account,
} from './helpers/accounts';
import { eventQueue } from './helpers/collect';
import { backendLabel, testDatabaseUrl, testRedisUrl } from './helpers/env';
import { spawnServer, type SpawnedServer } from './helpers/spawnServer';
import { startServer, type TestServer } from './helpers/startServer';

type Presence = { online: boolean; lastSeenAt: string | null } | null;
type PeopleEvent = { type: string; userId?: string; presence?: Presence };

/** A user's live events on its own socket (which also makes that user online). */
async function listen(url: string, token: string) {
  const events = eventQueue<PeopleEvent>();
  const client = createMvpClient({ url, getToken: () => token, WebSocket });
  await new Promise<void>((resolve, reject) => {
    client.api.sync.events.subscribe(
      { lastEventId: null },
      {
        onStarted: () => resolve(),
        onData: ({ data }) => events.push(data as PeopleEvent),
        onError: reject,
      },
    );
  });
  return { events, client, close: () => client.close() };
}

/** The next presence event about `userId`, skipping others' (contacts' own sockets). */
async function nextPresenceOf(events: ReturnType<typeof eventQueue<PeopleEvent>>, userId: string) {
  for (;;) {
    const event = await events.next(10_000);
    if (event.type === 'presence' && event.userId === userId) return event.presence;
  }
}

async function befriend(api: (a: Account) => MvpClient['api'], a: Account, b: Account) {
  await api(a).contacts.request.mutate({ userId: b.userId });
  expect((await api(b).contacts.request.mutate({ userId: a.userId })).status).toBe('accepted');
}

describe(`presence (${backendLabel})`, () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startServer({ presence: { ttlSeconds: 30, throttleMs: 0 } });
  });
  afterAll(() => t.stop());

  const api = (a: Account) => clientWithToken(t, a.accessToken).api;
  const presenceSeenBy = async (viewer: Account, user: Account) =>
    (await api(viewer).users.get.query({ id: user.userId })).presence;

  it('a contact sees me online while a device holds a socket, and last seen when it closes', async () => {
    const [a, b] = [await registerUser(t), await registerUser(t)];
    await befriend(api, a, b);
    const watcher = await listen(t.server.url, b.accessToken);
    expect(await presenceSeenBy(b, a)).toEqual({ online: false, lastSeenAt: null });

    const phone = await listen(t.server.url, a.accessToken);
    expect(await nextPresenceOf(watcher.events, a.userId)).toEqual({
      online: true,
      lastSeenAt: null,
    });
    expect(await presenceSeenBy(b, a)).toEqual({ online: true, lastSeenAt: null });

    const before = Date.now();
    await phone.close();
    const offline = await nextPresenceOf(watcher.events, a.userId);
    expect(offline?.online).toBe(false);
    expect(Date.parse(offline!.lastSeenAt!)).toBeGreaterThanOrEqual(before - 1000);
    expect(await presenceSeenBy(b, a)).toEqual(offline);
    await watcher.close();
  });

  it('a socket that closes while it signs in, or signs in for an ended session, leaves nobody online', async () => {
    const [a, b] = [await registerUser(t), await registerUser(t)];
    await befriend(api, a, b);
    const watcher = await listen(t.server.url, b.accessToken);
    const raw = (token: string) => {
      const ws = new WebSocket(`${t.server.wsUrl}?connectionParams=1`);
      ws.once('open', () =>
        ws.send(JSON.stringify({ method: 'connectionParams', data: { token } })),
      );
      return ws;
    };

    // Held in its session check until the socket is gone.
    const sessions = t.server.infra.ports.sessions;
    const check = sessions.check.bind(sessions);
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let checking!: () => void;
    const reached = new Promise<void>((resolve) => (checking = resolve));
    sessions.check = async (id) => {
      checking();
      await held;
      return check(id);
    };
    try {
      const closing = raw(a.accessToken);
      await reached;
      closing.terminate();
      await new Promise((resolve) => closing.once('close', resolve));
      await api(b).system.info.query(); // the server has read the close by the time it answers
    } finally {
      sessions.check = check;
      release();
    }

    // A revoked session's token is still valid for minutes: its socket's calls are refused.
    const second = await signInOnAnotherDevice(t, a);
    const sessionId = (await api(a).sessions.list.query()).sessions.find((s) => !s.current)!.id;
    await api(a).sessions.revoke.mutate({ id: sessionId });
    const revoked = raw(second);
    const refused = new Promise<string>((resolve) =>
      revoked.on('message', (data: Buffer) => {
        const frame = JSON.parse(data.toString()) as {
          id?: number;
          error?: { json: { message: string } };
        };
        if (frame.id === 1) resolve(frame.error?.json.message ?? 'answered');
      }),
    );
    revoked.once('open', () =>
      revoked.send(
        JSON.stringify({ id: 1, method: 'query', params: { path: 'me.get', input: {} } }),
      ),
    );
    expect(await refused).toBe('Session ended');

    // Neither counts: one real socket makes a online, and its close makes a offline.
    const phone = await listen(t.server.url, a.accessToken);
    expect((await nextPresenceOf(watcher.events, a.userId))?.online).toBe(true);
    await phone.close();
    expect((await nextPresenceOf(watcher.events, a.userId))?.online).toBe(false);
    revoked.close();
    await watcher.close();
  });

  it('presence follows the privacy setting, and a block hides it', async () => {
    const [a, friend, stranger] = [
      await registerUser(t),
      await registerUser(t),
      await registerUser(t),
    ];
    await befriend(api, a, friend);
    const watcher = await listen(t.server.url, friend.accessToken);
    const phone = await listen(t.server.url, a.accessToken);
    expect((await nextPresenceOf(watcher.events, a.userId))?.online).toBe(true);

    // Default: contacts only.
    expect(await presenceSeenBy(stranger, a)).toBeNull();
    expect((await presenceSeenBy(friend, a))?.online).toBe(true);

    await api(a).users.updatePrivacy.mutate({ presence: 'everyone' });
    expect((await presenceSeenBy(stranger, a))?.online).toBe(true);

    // Nobody: contacts are told at once that it is hidden, and see nothing from then on.
    await api(a).users.updatePrivacy.mutate({ presence: 'nobody' });
    expect(await nextPresenceOf(watcher.events, a.userId)).toBeNull();
    expect(await presenceSeenBy(friend, a)).toBeNull();
    expect(await presenceSeenBy(stranger, a)).toBeNull();

    await api(a).users.updatePrivacy.mutate({ presence: 'everyone' });
    expect((await nextPresenceOf(watcher.events, a.userId))?.online).toBe(true);
    await api(a).blocks.add.mutate({ userId: stranger.userId });
    expect(await presenceSeenBy(stranger, a)).toBeNull();
    await phone.close();
    await watcher.close();
  });

  it('malformed privacy input is refused and changes nothing', async () => {
    const a = await registerUser(t);
    const bad = await api(a)
      .users.updatePrivacy.mutate({ presence: 'friends' as never })
      .catch((e: unknown) => e);
    expect(bad).toMatchObject({ data: { code: 'BAD_REQUEST' } });
    expect((await api(a).users.privacy.query()).presence).toBe('contacts');
  });

  describe('the tracker on the shared store (two instances, a movable clock)', () => {
    let now = Date.now();
    const clock: Clock = { now: () => now };
    const TTL = 10_000;
    const trackerOf = (name: string, throttleMs = 0) =>
      createPresenceTracker({ ...t.server.infra.ports, clock } satisfies Ports, {
        instanceId: `${name}-${randomUUID()}`,
        ttlMs: TTL,
        throttleMs,
      });
    const isOnline = async (userId: string) =>
      (await t.server.infra.ports.presence.online([userId], now)).has(userId);
    /** A user and a friend watching them, the user connected on `tracker` and seen online. */
    const onlineWatched = async (tracker: PresenceTracker) => {
      const [user, friend] = [await registerUser(t), await registerUser(t)];
      await befriend(api, user, friend);
      const watcher = await listen(t.server.url, friend.accessToken);
      tracker.connected(user.userId);
      await tracker.idle();
      expect((await nextPresenceOf(watcher.events, user.userId))?.online).toBe(true);
      return { user, friend, watcher };
    };

    it('counts sockets per user: online until the last device on every instance leaves', async () => {
      const [x, y] = [trackerOf('x'), trackerOf('y')];
      const user = await registerUser(t);
      x.connected(user.userId);
      x.connected(user.userId);
      x.disconnected(user.userId);
      await x.idle();
      expect(await isOnline(user.userId)).toBe(true);

      y.connected(user.userId);
      x.disconnected(user.userId);
      await Promise.all([x.idle(), y.idle()]);
      expect(await isOnline(user.userId)).toBe(true);

      y.disconnected(user.userId);
      await y.idle();
      expect(await isOnline(user.userId)).toBe(false);
    });

    it('an instance that stops refreshing leaves its users online only until its deadline', async () => {
      const [live, dying] = [trackerOf('live'), trackerOf('dying')];
      const [user, friend] = [await registerUser(t), await registerUser(t)];
      await befriend(api, user, friend);
      const watcher = await listen(t.server.url, friend.accessToken);

      const lastRefresh = now;
      dying.connected(user.userId);
      await dying.idle();
      expect(await nextPresenceOf(watcher.events, user.userId)).toEqual({
        online: true,
        lastSeenAt: null,
      });

      now += TTL / 2;
      await live.tick();
      expect(await isOnline(user.userId)).toBe(true);

      // `dying` never ticks again: after its deadline another instance's sweep ends it.
      now += TTL;
      await live.tick();
      await live.idle();
      expect(await isOnline(user.userId)).toBe(false);
      expect(await nextPresenceOf(watcher.events, user.userId)).toEqual({
        online: false,
        lastSeenAt: new Date(lastRefresh).toISOString(),
      });

      // It was only paused: its next refresh brings the user back, and that is announced.
      await dying.tick();
      expect(await nextPresenceOf(watcher.events, user.userId)).toEqual({
        online: true,
        lastSeenAt: null,
      });
      await dying.stop();
      expect((await nextPresenceOf(watcher.events, user.userId))?.online).toBe(false);
      await watcher.close();
    });

    it('lets one change per user through per window and ends on the true state', async () => {
      const tracker = trackerOf('throttled', 1_500);
      const { user, watcher } = await onlineWatched(tracker);
      // Flapping inside the window: nothing goes out until it ends, then only the final state.
      for (let i = 0; i < 3; i++) {
        tracker.disconnected(user.userId);
        tracker.connected(user.userId);
      }
      tracker.disconnected(user.userId);
      await tracker.idle();
      expect(await nextPresenceOf(watcher.events, user.userId)).toMatchObject({ online: false });
      expect(watcher.events.size).toBe(0);
      await tracker.stop();
      await watcher.close();
    });

    it('stopped inside the throttle window, an instance still tells the last change (offline)', async () => {
      const tracker = trackerOf('stopping', 60_000);
      const { user, friend, watcher } = await onlineWatched(tracker);
      // Left and back inside the window: held back, then the instance stops (a deploy).
      tracker.disconnected(user.userId);
      tracker.connected(user.userId);
      await tracker.idle();
      await tracker.stop();
      const last = await nextPresenceOf(watcher.events, user.userId);
      expect(last?.online).toBe(false);
      expect(await presenceSeenBy(friend, user)).toEqual(last);
      await watcher.close();
    });

    it('a dead instance’s users all go offline in one sweep, however many', async () => {
      const [live, dying] = [trackerOf('live'), trackerOf('dying')];
      // Not accounts: the store's entries are what is swept (nobody to tell about them).
      const users = Array.from({ length: 1_200 }, () => randomUUID());
      for (const id of users) dying.connected(id);
      await dying.idle();
      expect((await t.server.infra.ports.presence.online(users, now)).size).toBe(users.length);
      now += 2 * TTL;
      await live.tick();
      await live.idle();
      // Reads already see them offline (deadlines), but the store still held those unswept.
      expect(await t.server.infra.ports.presence.sweep(now, 5_000)).toEqual([]);
    });

    it('a going offline that fails to be told is told again at the next tick', async () => {
      const ports = t.server.infra.ports;
      let failing = true;
      const bus = {
        ...ports.bus,
        publish: (channel: string, message: unknown) =>
          failing ? Promise.reject(new Error('redis down')) : ports.bus.publish(channel, message),
      };
      const live = createPresenceTracker({ ...ports, bus, clock } satisfies Ports, {
        instanceId: `live-${randomUUID()}`,
        ttlMs: TTL,
        throttleMs: 0,
      });
      const { user, watcher } = await onlineWatched(trackerOf('dying'));

      now += 2 * TTL;
      await live.tick(); // swept; telling it fails
      await live.idle();
      expect(watcher.events.size).toBe(0);
      failing = false;
      await live.tick();
      await live.idle();
      expect((await nextPresenceOf(watcher.events, user.userId))?.online).toBe(false);
      await watcher.close();
    });
  });
});

describe(`presence when a server process is killed (${backendLabel})`, () => {
  // With Redis two processes share the store: the survivor sweeps the dead one's users. The
  // embedded setup is one process, so there the check is that a restart starts everyone offline.
  const twoProcesses = Boolean(testRedisUrl);
  const shared = {
    MVP_PRESENCE_TTL_SECONDS: '3',
    MVP_PRESENCE_THROTTLE_MS: '0',
    MVP_REDIS_PREFIX: `test:${randomUUID()}:`,
    DATABASE_URL: testDatabaseUrl.startsWith('sqlite')
      ? `sqlite:${join(mkdtempSync(join(tmpdir(), 'mvp-presence-')), 'mvp.db')}`
      : testDatabaseUrl,
  };
  const spawned: SpawnedServer[] = [];
  const spawn = async () => {
    const s = await spawnServer(shared);
    spawned.push(s);
    return s;
  };
  afterAll(async () => {
    for (const s of spawned) if (s.child.exitCode === null && !s.child.killed) s.child.kill();
    await Promise.all(spawned.map((s) => s.exited));
  });

  it('users of a SIGKILLed instance go offline, last seen at its last refresh', async () => {
    const doomed = await spawn();
    const survivor = twoProcesses ? await spawn() : undefined;
    const on = (url: string) => createMvpClient({ url });
    const register = async (url: string): Promise<Account> => {
      const res = await on(url).api.auth.register.mutate({
        username: `p_${randomUUID().slice(0, 8)}`,
        password: PASSWORD,
        displayName: 'Presence',
        device: DEVICE,
      });
      if (res.status !== 'ok') throw new Error('expected tokens');
      return { ...res, username: '', userId: res.user.id, uniqueId: res.user.uniqueId };
    };
    const apiOn = (url: string) => (a: Account) =>
      createMvpClient({ url, getToken: () => a.accessToken }).api;

    const [user, friend] = [await register(doomed.url), await register(doomed.url)];
    await befriend(apiOn(doomed.url), user, friend);
    const watcher = survivor && (await listen(survivor.url, friend.accessToken));
    const phone = await listen(doomed.url, user.accessToken);
    if (watcher) expect((await nextPresenceOf(watcher.events, user.userId))?.online).toBe(true);

    const killedAt = Date.now();
    doomed.child.kill('SIGKILL');
    expect((await doomed.exited).signal).toBe('SIGKILL');
    await phone.close();

    const observer = survivor ?? (await spawn());
    if (watcher) {
      const offline = await nextPresenceOf(watcher.events, user.userId);
      expect(offline?.online).toBe(false);
      // The last refresh happened within one TTL before the kill.
      expect(Date.parse(offline!.lastSeenAt!)).toBeGreaterThan(killedAt - 3_000 - 1_000);
      expect(Date.parse(offline!.lastSeenAt!)).toBeLessThanOrEqual(killedAt);
      await watcher.close();
    }
    const seen = await apiOn(observer.url)(friend).users.get.query({ id: user.userId });
    expect(seen.presence?.online).toBe(false);
  });
});
