import { describe, expect, it, vi } from 'vitest';
import { createMvpClient } from './createMvpClient';
import { errorCodeOf } from './errors';
import { fakeServer, SilentSocket, storedMessage } from './fakeServer.testing';
import type { OutboxItem } from './outboxTypes';
import { snapshotOf } from './syncEngine.testing';
import { createMemoryTokenStore, type StoredSession, type TokenStore } from './tokenStore';

const user = { id: 'u1', uniqueId: '12345678', username: 'alice' };
const inMinutes = (m: number) => new Date(Date.now() + m * 60_000).toISOString();
const tokens = (n: number) => ({
  status: 'ok' as const,
  accessToken: `access-${n}`,
  refreshToken: `refresh-${n}`,
  expiresAt: inMinutes(15),
  sessionId: 's1',
  user,
  deviceCookie: `cookie-${n}`,
});
const storedSession = (n: number, expiresAt: number): StoredSession => ({
  accessToken: `access-${n}`,
  refreshToken: `refresh-${n}`,
  expiresAt,
  sessionId: 's1',
  user,
});
const me = { id: 'u1' };
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A server that accepts `valid` access tokens and rotates refresh tokens like the real one. */
function rotatingServer(opts: {
  valid: Set<string>;
  refreshDelayMs?: number;
  refreshOk?: boolean;
}) {
  let issued = 1;
  return fakeServer(async ({ path, input, auth }) => {
    if (path === 'auth.login') return { data: tokens(1) };
    if (path === 'auth.logout') return auth ? { data: { ok: true } } : { appCode: 'UNAUTHORIZED' };
    if (path === 'auth.refresh') {
      await sleep(opts.refreshDelayMs ?? 0);
      if (opts.refreshOk === false) return { appCode: 'UNAUTHORIZED' };
      const { refreshToken } = input as { refreshToken: string };
      if (refreshToken !== `refresh-${issued}`) return { appCode: 'UNAUTHORIZED' };
      issued += 1;
      opts.valid.add(`access-${issued}`);
      return { data: tokens(issued) };
    }
    const token = auth?.replace(/^Bearer /, '');
    return token && opts.valid.has(token) ? { data: me } : { appCode: 'UNAUTHORIZED' };
  });
}

const login = {
  identifier: 'alice',
  password: 'pw',
  device: { name: 'test', platform: 'node' as const },
};

describe('createMvpClient with a session', () => {
  it('login keeps the tokens and later calls carry them; sign-in calls carry none', async () => {
    const server = rotatingServer({ valid: new Set(['access-1']) });
    const client = createMvpClient({ url: 'http://mvp.test', fetch: server.fetch });
    expect(await client.auth.isSignedIn()).toBe(false);
    expect(await client.auth.login(login)).toMatchObject({ status: 'ok', accessToken: 'access-1' });
    expect(await client.auth.session()).toMatchObject({ refreshToken: 'refresh-1', user });
    expect(await client.api.me.get.query()).toEqual(me);
    expect(server.calls.map((c) => [c.path, c.auth])).toEqual([
      ['auth.login', null],
      ['me.get', 'Bearer access-1'],
    ]);
  });

  it('calls made while an expired token is being refreshed share one refresh', async () => {
    const valid = new Set<string>();
    const server = rotatingServer({ valid, refreshDelayMs: 30 });
    const store = createMemoryTokenStore(storedSession(1, Date.now() - 1_000));
    const client = createMvpClient({
      url: 'http://mvp.test',
      fetch: server.fetch,
      tokenStore: store,
    });
    const results: Promise<unknown>[] = [];
    // Separate ticks, so these are separate HTTP batches, each asking for a token on its own.
    for (let i = 0; i < 4; i += 1) {
      results.push(client.api.me.get.query());
      await sleep(2);
    }
    expect(await Promise.all(results)).toEqual([me, me, me, me]);
    expect(server.count('auth.refresh')).toBe(1);
    expect(server.calls.filter((c) => c.path === 'me.get').map((c) => c.auth)).toEqual(
      Array(4).fill('Bearer access-2'),
    );
  });

  it('an UNAUTHORIZED answer refreshes once and retries the call once', async () => {
    const valid = new Set<string>(); // the server no longer takes access-1, e.g. after a key roll
    const server = rotatingServer({ valid });
    const store = createMemoryTokenStore(storedSession(1, Date.now() + 10 * 60_000));
    const client = createMvpClient({
      url: 'http://mvp.test',
      fetch: server.fetch,
      tokenStore: store,
    });
    const [a, b] = await Promise.all([client.api.me.get.query(), client.api.me.get.query()]);
    expect([a, b]).toEqual([me, me]);
    expect(server.count('auth.refresh')).toBe(1);
    expect(server.count('me.get')).toBe(4);
  });

  it('a second UNAUTHORIZED after the retry is the answer (no loop)', async () => {
    const server = fakeServer(({ path }) =>
      path === 'auth.refresh' ? { data: tokens(2) } : { appCode: 'UNAUTHORIZED' },
    );
    const store = createMemoryTokenStore(storedSession(1, Date.now() + 10 * 60_000));
    const client = createMvpClient({
      url: 'http://mvp.test',
      fetch: server.fetch,
      tokenStore: store,
    });
    const error = await client.api.me.get.query().catch((e: unknown) => e);
    expect(errorCodeOf(error)).toBe('UNAUTHORIZED');
    expect(server.count('me.get')).toBe(2);
    expect(server.count('auth.refresh')).toBe(1);
  });

  it('a refused refresh ends the session: store cleared, onSessionEnded once, the call fails', async () => {
    const server = rotatingServer({ valid: new Set(), refreshOk: false });
    const store = createMemoryTokenStore(storedSession(1, Date.now() + 10 * 60_000));
    const ended: string[] = [];
    const client = createMvpClient({
      url: 'http://mvp.test',
      fetch: server.fetch,
      tokenStore: store,
      onSessionEnded: (reason) => ended.push(reason),
    });
    const errors = await Promise.all(
      [1, 2, 3].map(() => client.api.me.get.query().catch((e: unknown) => errorCodeOf(e))),
    );
    expect(errors).toEqual(['UNAUTHORIZED', 'UNAUTHORIZED', 'UNAUTHORIZED']);
    expect(ended).toEqual(['refresh_failed']);
    expect(await store.load()).toBeNull();
    expect(server.count('auth.refresh')).toBe(1);
  });

  it('a call without a token is not retried, and neither is a sign-in call', async () => {
    const server = fakeServer(() => ({ appCode: 'UNAUTHORIZED' }));
    const client = createMvpClient({ url: 'http://mvp.test', fetch: server.fetch });
    expect(errorCodeOf(await client.api.me.get.query().catch((e: unknown) => e))).toBe(
      'UNAUTHORIZED',
    );
    expect(errorCodeOf(await client.auth.login(login).catch((e: unknown) => e))).toBe(
      'UNAUTHORIZED',
    );
    expect(server.calls.map((c) => c.path)).toEqual(['me.get', 'auth.login']);
  });

  it('logout tells the server with the token, clears the store and reports signed_out', async () => {
    const server = rotatingServer({ valid: new Set(['access-1']) });
    const ended: string[] = [];
    const client = createMvpClient({
      url: 'http://mvp.test',
      fetch: server.fetch,
      onSessionEnded: (reason) => ended.push(reason),
    });
    await client.auth.login(login);
    await client.auth.logout();
    expect(server.calls.at(-1)).toMatchObject({ path: 'auth.logout', auth: 'Bearer access-1' });
    expect(await client.auth.session()).toBeNull();
    expect(ended).toEqual(['signed_out']);
  });

  it('getToken wins: its token is sent and the client never refreshes or retries', async () => {
    const server = fakeServer(({ path }) =>
      path === 'auth.refresh' ? { data: tokens(2) } : { appCode: 'UNAUTHORIZED' },
    );
    const store = createMemoryTokenStore(storedSession(1, Date.now() - 1_000));
    const client = createMvpClient({
      url: 'http://mvp.test',
      fetch: server.fetch,
      tokenStore: store,
      getToken: () => 'app-token',
    });
    expect(errorCodeOf(await client.api.me.get.query().catch((e: unknown) => e))).toBe(
      'UNAUTHORIZED',
    );
    expect(server.calls.map((c) => [c.path, c.auth])).toEqual([['me.get', 'Bearer app-token']]);
  });

  it("logout forgets the account's unread counts, and tells onUnreadChange", async () => {
    const server = fakeServer(({ path }) => {
      if (path === 'me.get') return { data: me };
      if (path === 'sync.snapshot')
        return { data: snapshotOf('7', [{ id: 'c1', lastSeq: 5, unread: 2, readSeq: 3 }]) };
      return path === 'auth.logout' ? { data: { ok: true } } : { appCode: 'UNAUTHORIZED' };
    });
    const client = createMvpClient({
      url: 'http://mvp.test',
      fetch: server.fetch,
      WebSocket: SilentSocket,
      tokenStore: createMemoryTokenStore(storedSession(1, Date.now() + 10 * 60_000)),
    });
    const changes: [string, number][] = [];
    const counted = new Promise<void>((resolve) =>
      client.sync.onUnreadChange((id, n) => {
        changes.push([id, n]);
        if (n > 0) resolve();
      }),
    );
    client.sync.start().catch(() => undefined); // stopped by the logout before it is live
    await counted;
    expect(client.sync.unreadTotal()).toBe(2);

    await client.auth.logout();
    expect([client.sync.unread('c1'), client.sync.unreadTotal()]).toEqual([0, 0]);
    expect(changes).toEqual([
      ['c1', 2],
      ['c1', 0],
    ]);
    await client.close();
  });
});

describe('createMvpClient outbox with getToken', () => {
  /** An unsigned JWT naming `sub`, as the server's access tokens do (the client never checks it). */
  const jwtFor = (sub: string) => {
    const part = (value: object) =>
      btoa(JSON.stringify(value)).replace(/=+$/, '').replace(/\+/g, '-').replace(/\//g, '_');
    return `${part({ alg: 'EdDSA' })}.${part({ sub, exp: 1 })}.sig`;
  };

  it('offline, a send is queued as the token names (no network asked) and goes out once online', async () => {
    let online = false;
    const server = fakeServer(({ path, input }) =>
      path === 'messages.send' ? { data: storedMessage(input) } : { appCode: 'UNAUTHORIZED' },
    );
    const token = jwtFor('u1');
    const client = createMvpClient({
      url: 'http://mvp.test',
      fetch: (url, init) =>
        online ? server.fetch(url, init) : Promise.reject(new TypeError('fetch failed')),
      getToken: () => token,
    });
    const handle = client.outbox.send('c1', {
      contentType: 'text/plain',
      ciphertext: new Uint8Array([1]),
    });
    await vi.waitFor(() => expect(client.outbox.pending()[0]?.attempts).toBeGreaterThan(0));
    expect(client.outbox.pending()).toMatchObject([{ state: 'queued' }]);

    online = true;
    client.outbox.retryNow();
    expect((await handle.result).seq).toBe(1);
    expect(server.calls.map((c) => [c.path, c.auth])).toEqual([
      ['messages.send', `Bearer ${token}`],
    ]);
    await client.close();
  });

  it('an outbox send refused by its guard travels alone: a call made in the same tick still answers', async () => {
    const server = fakeServer(({ path }) =>
      path === 'messages.markRead' ? { data: { ok: true } } : { appCode: 'UNAUTHORIZED' },
    );
    const client = createMvpClient({
      url: 'http://mvp.test',
      fetch: server.fetch,
      getToken: () => jwtFor('u2'),
    });
    // As the outbox sends it (its owner in the context), while the token is someone else's.
    const send = client.api.messages.send.mutate(
      {
        conversationId: 'c1',
        clientMessageId: 'x'.repeat(22),
        contentType: 'text/plain',
        ciphertext: 'AQ==',
      },
      { context: { mvpSendAs: 'u1' } },
    );
    // Another mutation in the same tick: a batch would have carried both.
    const other = client.api.messages.markRead.mutate({ conversationId: 'c1', seq: 1 });
    await expect(send).rejects.toThrow(
      "not sending another account's request under this one's token",
    );
    expect(await other).toEqual({ ok: true });
    expect(server.calls.map((c) => c.path)).toEqual(['messages.markRead']);
  });
});

describe('createMvpClient outbox with a session', () => {
  it('a refresh between reading the token and checking its owner does not fail a send', async () => {
    const server = fakeServer(({ path, input }) =>
      path === 'messages.send' ? { data: storedMessage(input) } : { appCode: 'UNAUTHORIZED' },
    );
    // Another tab sharing the store refreshes all the time: every read finds newer tokens, all
    // of the same account. The token a send carries and the owner it is checked against must
    // come from one read, or they belong to two sessions and the guard refuses its own account.
    let reads = 0;
    const tokenStore: TokenStore = {
      load: () => storedSession(++reads, Date.now() + 15 * 60_000),
      save: () => undefined,
      clear: () => undefined,
    };
    const client = createMvpClient({ url: 'http://mvp.test', fetch: server.fetch, tokenStore });
    const firstOutcome = new Promise<OutboxItem>((resolve) =>
      client.outbox.onChange((item) => {
        if (item.state === 'sent' || item.error) resolve(item);
      }),
    );
    const handle = client.outbox.send('c1', {
      contentType: 'text/plain',
      ciphertext: new Uint8Array([1]),
    });
    expect(await firstOutcome).toMatchObject({ state: 'sent', attempts: 1 });
    expect((await handle.result).seq).toBe(1);
    expect(server.calls.map((c) => [c.path, c.auth?.startsWith('Bearer access-')])).toEqual([
      ['messages.send', true],
    ]);
    await client.close();
  });
});
