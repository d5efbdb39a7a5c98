import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  createMemoryCursorStore,
  createMemoryTokenStore,
  type MvpClient,
  type SessionEndReason,
  type TokenStore,
} from '@mvp/sdk';
import {
  DEVICE,
  PASSWORD,
  befriend,
  clientWithToken,
  currentDeviceId,
  freshPhone,
  freshUsername,
  lastOtp,
  registerUser,
} from './helpers/accounts';
import { sendText } from './helpers/messaging';
import { eventQueue } from './helpers/collect';
import { startServer, type TestServer } from './helpers/startServer';
import { backendLabel } from './helpers/env';
import { codeOf } from './helpers/errors';

/** A fetch that counts the procedures it carries (a batch counts each of its calls). */
function countingFetch() {
  const paths: string[] = [];
  const counted: typeof fetch = (input, init) => {
    const url = new URL(input instanceof Request ? input.url : String(input));
    paths.push(...decodeURIComponent(url.pathname.replace(/^\/trpc\//, '')).split(','));
    return fetch(input, init);
  };
  return { fetch: counted, count: (path: string) => paths.filter((p) => p === path).length };
}

type Probe = {
  client: MvpClient;
  store: TokenStore;
  ended: SessionEndReason[];
  refreshes: () => number;
};

describe(`the SDK's session handling against a real server (${backendLabel})`, () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startServer();
  });
  afterAll(() => t.stop());

  /** A client with its own store, a record of onSessionEnded and a count of refreshes. */
  function probe(): Probe {
    const store = createMemoryTokenStore();
    const ended: SessionEndReason[] = [];
    const counter = countingFetch();
    const client = t.newClient({
      tokenStore: store,
      fetch: counter.fetch,
      onSessionEnded: (reason) => ended.push(reason),
    });
    return { client, store, ended, refreshes: () => counter.count('auth.refresh') };
  }

  async function signedUp(p: Probe, username = freshUsername()) {
    const res = await p.client.auth.register({
      username,
      password: PASSWORD,
      displayName: 'SDK User',
      device: DEVICE,
    });
    if (res.status !== 'ok') throw new Error('expected tokens');
    return { username, res };
  }

  /** Makes the stored access token look expired, so the next use must refresh first. */
  async function expireAccessToken(store: TokenStore) {
    const session = await store.load();
    if (!session) throw new Error('not signed in');
    await store.save({ ...session, expiresAt: Date.now() - 1_000 });
    return session;
  }

  async function revokeFromAnotherDevice(username: string) {
    const other = t.newClient();
    const res = await other.auth.login({
      identifier: username,
      password: PASSWORD,
      device: { name: 'Other device', platform: 'web' },
    });
    expect(res.status).toBe('ok');
    expect(await other.api.sessions.revokeOthers.mutate()).toEqual({ revoked: 1 });
  }

  it('register keeps the tokens, and authed calls use them', async () => {
    const p = probe();
    const { username, res } = await signedUp(p);
    const session = await p.client.auth.session();
    expect(session).toEqual({
      accessToken: res.accessToken,
      refreshToken: res.refreshToken,
      expiresAt: expect.any(Number),
      issuedAt: expect.any(Number),
      sessionId: res.sessionId,
      user: res.user,
    });
    // On this device's clock: its arrival plus the token's lifetime (here the same clock as the
    // server's, so within the second `iat` is rounded to).
    expect(session!.expiresAt - session!.issuedAt!).toBe(
      t.server.config.auth.jwt.accessTtlSeconds * 1000,
    );
    expect(Math.abs(session!.expiresAt - Date.parse(res.expiresAt))).toBeLessThan(2_000);
    expect(await p.client.auth.isSignedIn()).toBe(true);
    expect(await p.client.api.me.get.query()).toMatchObject({ id: res.user.id, username });
    expect(p.refreshes()).toBe(0);
  });

  it('a phone sign-up goes through sendOtp and verifyOtp, then is signed in', async () => {
    const p = probe();
    const phone = freshPhone();
    const first = await p.client.auth.register({
      phone,
      password: PASSWORD,
      displayName: 'SDK Phone',
      device: DEVICE,
    });
    if (first.status !== 'otp_required') throw new Error('expected an OTP challenge');
    expect(await p.client.auth.isSignedIn()).toBe(false);
    expect(await p.client.auth.sendOtp({ challengeId: first.challengeId })).toMatchObject({
      status: 'sent',
    });
    const verified = await p.client.auth.verifyOtp({
      challengeId: first.challengeId,
      code: lastOtp(t.logs, phone),
    });
    expect(verified.status).toBe('ok');
    expect((await p.client.auth.session())?.sessionId).toBe(verified.sessionId);
    expect((await p.client.api.me.get.query()).id).toBe(verified.user.id);
  });

  it('concurrent calls with an expired access token share exactly one refresh', async () => {
    const p = probe();
    await signedUp(p);
    const before = await expireAccessToken(p.store);

    const late = async () => {
      await new Promise((resolve) => setTimeout(resolve, 0));
      return p.client.api.me.get.query();
    };
    const [me, list, refreshed, again] = await Promise.all([
      p.client.api.me.get.query(),
      p.client.api.sessions.list.query(),
      p.client.auth.refresh(),
      late(),
    ]);
    expect(p.refreshes()).toBe(1);
    expect(me.id).toBe(before.user.id);
    expect(again.id).toBe(before.user.id);
    expect(list.sessions.find((s) => s.current)?.id).toBe(before.sessionId);
    const after = await p.store.load();
    expect(after?.refreshToken).toBe(refreshed?.refreshToken);
    expect(after?.refreshToken).not.toBe(before.refreshToken);
    expect(after!.expiresAt).toBeGreaterThan(Date.now());
    expect(p.ended).toEqual([]);
  });

  it('an access token the server refuses is refreshed once and the call retried', async () => {
    const p = probe();
    await signedUp(p);
    const session = (await p.store.load())!;
    await p.store.save({ ...session, accessToken: 'not-a-token-the-server-issued' });
    const [a, b] = await Promise.all([p.client.api.me.get.query(), p.client.api.me.get.query()]);
    expect([a.id, b.id]).toEqual([session.user.id, session.user.id]);
    expect(p.refreshes()).toBe(1);
  });

  it('a session revoked elsewhere ends: refresh fails, onSessionEnded once, store cleared', async () => {
    const p = probe();
    const { username } = await signedUp(p);
    await revokeFromAnotherDevice(username);

    const codes = await Promise.all([
      codeOf(p.client.api.me.get.query()),
      codeOf(p.client.api.sessions.list.query()),
    ]);
    expect(codes).toEqual(['UNAUTHORIZED', 'UNAUTHORIZED']);
    expect(p.ended).toEqual(['refresh_failed']);
    expect(p.refreshes()).toBe(1);
    expect(await p.store.load()).toBeNull();
    expect(await p.client.auth.isSignedIn()).toBe(false);

    // Signed out now: no token is sent, so nothing more is refreshed or announced.
    expect(await codeOf(p.client.api.me.get.query())).toBe('UNAUTHORIZED');
    expect(await p.client.api.system.info.query()).toHaveProperty('version');
    expect(p.refreshes()).toBe(1);
    expect(p.ended).toEqual(['refresh_failed']);
  });

  it('the WebSocket connects with a fresh token, and hears of its session ending', async () => {
    const p = probe();
    const { username } = await signedUp(p);
    await expireAccessToken(p.store);

    const ticks = eventQueue<number>();
    const sub = p.client.api.system.ticks.subscribe(
      { intervalMs: 20 },
      { onData: (event) => ticks.push(event.data.seq) },
    );
    await ticks.next();
    // connectionParams asked for a token and got a refreshed one.
    expect(p.refreshes()).toBe(1);

    // The server closes this session's socket (4401); the SDK's refresh confirms the end
    // without the app making a call, and the socket comes back signed out.
    await revokeFromAnotherDevice(username);
    await vi.waitFor(() => expect(p.ended).toEqual(['refresh_failed']), { timeout: 5_000 });
    expect(await p.store.load()).toBeNull();
    while (ticks.size > 0) await ticks.next();
    await ticks.next();
    sub.unsubscribe();
    expect(p.ended).toEqual(['refresh_failed']);
  });

  it('a sign-in answers once its tokens are kept, even when a handler of the last stream fails then: that goes to sync.onError', async () => {
    const [alice, bob] = [await signedUp(probe()), await signedUp(probe())];
    // Alice's stored cursor is ahead of her stream (as if from another server): it opens with
    // a resync, whose handler (clearing the app's data) is still busy when Bob signs in.
    const cursorStore = createMemoryCursorStore(
      JSON.stringify({ userId: alice.res.user.id, id: '999999999' }),
    );
    let failClearing: (error: Error) => void = () => undefined;
    const tokens = createMemoryTokenStore();
    const tokenStore: TokenStore = {
      ...tokens,
      // Fails the handler as Bob's tokens are kept: the sign-in then has to wait for it.
      save: (session) => {
        failClearing(new Error('the app could not clear its data'));
        return tokens.save(session);
      },
    };
    let socketClosed!: () => void;
    const aliceSocketClosed = new Promise<void>((resolve) => (socketClosed = resolve));
    const app = t.newClient({
      tokenStore,
      cursorStore,
      onConnectionStateChange: (state) => state === 'closed' && socketClosed(),
    });
    const signIn = (username: string) =>
      app.auth.login({ identifier: username, password: PASSWORD, device: DEVICE });
    expect((await signIn(alice.username)).status).toBe('ok');
    const errors: unknown[] = [];
    app.sync.onError((error) => errors.push(error));
    const clearing = new Promise<void>((entered) =>
      app.sync.onResync(
        () =>
          new Promise<void>((_, reject) => {
            failClearing = (error) => {
              failClearing = () => undefined;
              reject(error);
            };
            entered();
          }),
      ),
    );
    await app.sync.start();
    await clearing;

    const answer = await signIn(bob.username);
    expect(answer).toMatchObject({ status: 'ok', user: { id: bob.res.user.id } });
    expect((await app.auth.session())?.user.id).toBe(bob.res.user.id);
    expect((await app.api.me.get.query()).id).toBe(bob.res.user.id);
    expect(app.sync.state).toBe('stopped');
    expect(errors.map((e) => (e as Error).message)).toEqual(['the app could not clear its data']);
    // Alice's socket is dropped all the same: it must not carry Bob's subscriptions.
    await aliceSocketClosed;
    // The failed handler is behind the engine: closing the client does not meet it again.
    await expect(app.close()).resolves.toBeUndefined();
    expect(errors).toHaveLength(1);
  });

  it("an envelope handled as one account is not acknowledged with the next one's token (that deleted its envelopes)", async () => {
    const [alice, bob, carol] = [
      await signedUp(probe()),
      await signedUp(probe()),
      await signedUp(probe()),
    ];
    const carolApi = clientWithToken(t, carol.res.accessToken).api;
    const envelopeTo = (userId: string, deviceId: string) => ({
      userId,
      deviceId,
      contentType: 'mvp/key-share',
      ciphertext: Buffer.from('opaque').toString('base64'),
    });
    let bobsEnvelope: Promise<void> | undefined;
    const tokens = createMemoryTokenStore();
    const tokenStore: TokenStore = {
      ...tokens,
      async save(session) {
        await tokens.save(session);
        // Bob's new device on this app is sent an envelope as soon as it exists.
        if (session.user.id === bob.res.user.id) {
          const device = await currentDeviceId(t, session.accessToken);
          bobsEnvelope = carolApi.sync.sendToDevices
            .mutate({ envelopes: [envelopeTo(bob.res.user.id, device)] })
            .then(() => undefined);
          await bobsEnvelope;
        }
      },
    };
    const app = t.newClient({ tokenStore });
    const signIn = (username: string) =>
      app.auth.login({ identifier: username, password: PASSWORD, device: DEVICE });
    expect((await signIn(alice.username)).status).toBe('ok');
    const aliceDevice = await currentDeviceId(t, (await tokens.load())!.accessToken);
    // Alice's stream runs ahead of Bob's: her last envelope's id is above his envelope's.
    for (let i = 0; i < 6; i++)
      await carolApi.sync.sendToDevices.mutate({
        envelopes: [envelopeTo(alice.res.user.id, aliceDevice)],
      });
    const errors: unknown[] = [];
    app.sync.onError((error) => errors.push(error));
    let handled = 0;
    let release!: () => void;
    const lastEntered = new Promise<void>((entered) =>
      app.sync.onEvent(async (event) => {
        if (event.type !== 'envelope' || ++handled < 6) return;
        entered();
        await new Promise<void>((resolve) => (release = resolve));
      }),
    );
    // A cold start: the envelopes come with the snapshot, and the start waits for their handling.
    const started = app.sync.start();
    await lastEntered;

    // Bob signs in while Alice's last envelope is in hand; it finishes once his tokens are kept.
    const signingIn = signIn(bob.username);
    await vi.waitFor(() => expect(bobsEnvelope).toBeDefined());
    await bobsEnvelope;
    release();
    // The sign-in stopped the stream before it went live: that start() says so.
    await expect(started).rejects.toThrow('the sync stream stopped before it started');
    expect(await signingIn).toMatchObject({ status: 'ok', user: { id: bob.res.user.id } });

    // The ack of Alice's envelopes is refused under Bob's token, and reported.
    await vi.waitFor(() =>
      expect(errors.map((e) => (e as Error).message)).toContain(
        "@mvp/sdk: not sending another account's request under this one's token",
      ),
    );
    // Bob's envelope still waits for his device (Alice's last one waits for her next start).
    const bobToken = (await tokens.load())!.accessToken;
    const bobView = await clientWithToken(t, bobToken).api.sync.snapshot.query();
    expect(bobView.pendingEnvelopes).toHaveLength(1);
    await app.close();
  });

  it('logout ends the session on the server and clears the store', async () => {
    const p = probe();
    await signedUp(p);
    const before = (await p.store.load())!;
    await p.client.auth.logout();
    expect(await p.store.load()).toBeNull();
    expect(p.ended).toEqual(['signed_out']);
    expect(
      await codeOf(t.client.api.auth.refresh.mutate({ refreshToken: before.refreshToken })),
    ).toBe('UNAUTHORIZED');
    // Logging out again is harmless and quiet.
    await p.client.auth.logout();
    expect(p.ended).toEqual(['signed_out']);
  });
});

describe(`the sync stream outlives its socket's token (${backendLabel})`, () => {
  let t: TestServer;
  /** Moves the server's clock past the access token the socket opened with. */
  let offsetMs = 0;
  beforeAll(async () => {
    t = await startServer({}, { clock: { now: () => Date.now() + offsetMs } });
  });
  afterAll(() => t.stop());

  it('a stream started after that token expired goes live on a fresh socket', async () => {
    const [alice, bob] = [await registerUser(t), await registerUser(t)];
    await befriend(t, alice, bob);
    const chat = await clientWithToken(t, bob.accessToken).api.conversations.create.mutate({
      kind: 'direct',
      userId: alice.userId,
    });
    const app = t.newClient();
    const login = { identifier: alice.username, password: PASSWORD, device: DEVICE };
    expect((await app.auth.login(login)).status).toBe('ok');
    await app.sync.start();
    // 16 minutes on: the socket's token (15 minutes) has expired, the session has not.
    offsetMs = 16 * 60 * 1000;
    await app.sync.stop();
    await app.sync.start();
    expect(app.sync.state).toBe('live');
    // And it is the account's stream: a message to Alice arrives on it.
    const seen = eventQueue<string>();
    app.sync.onEvent((event) => void seen.push(event.type));
    const again = await t.client.api.auth.login.mutate({ ...login, identifier: bob.username });
    if (again.status !== 'ok') throw new Error('expected tokens');
    await sendText(t, { ...bob, accessToken: again.accessToken }, chat.id, 'after the expiry');
    for (;;) if ((await seen.next()) === 'message.new') break;
    await app.close();
  });
});
