import { TRPCClientError } from '@trpc/client';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  AHEAD_RETRY_MS,
  createAuthSession,
  MAX_DEVICE_COOKIES,
  REFRESH_ABANDON_MS,
  REFRESH_TIMEOUT_MS,
  type AuthTokens,
  type SessionEndReason,
} from './authSession';
import { createMemoryTokenStore, type StoredSession } from './tokenStore';

const NOW = Date.parse('2026-11-24T12:00:00Z');
const user = { id: 'u1', uniqueId: '12345678', username: 'alice' };

function stored(n: number, expiresInMs: number): StoredSession {
  return {
    accessToken: `access-${n}`,
    refreshToken: `refresh-${n}`,
    expiresAt: NOW + expiresInMs,
    sessionId: 's1',
    user,
  };
}

function tokens(n: number, expiresInMs = 15 * 60_000): AuthTokens {
  return {
    accessToken: `access-${n}`,
    refreshToken: `refresh-${n}`,
    expiresAt: new Date(NOW + expiresInMs).toISOString(),
    sessionId: 's1',
    user,
    deviceCookie: `cookie-${n}`,
  };
}

function serverError(appCode: string): TRPCClientError<never> {
  return TRPCClientError.from({
    error: { message: appCode, code: -32001, data: { appCode, code: appCode, httpStatus: 401 } },
  });
}

/** A refresh the test answers by hand, so it can pile callers onto one in-flight exchange. */
function manualExchange() {
  const calls: string[] = [];
  const pending: { resolve: (t: AuthTokens) => void; reject: (e: unknown) => void }[] = [];
  const exchange = vi.fn(
    (refreshToken: string) =>
      new Promise<AuthTokens>((resolve, reject) => {
        calls.push(refreshToken);
        pending.push({ resolve, reject });
      }),
  );
  return { exchange, calls, answer: () => pending.shift()! };
}

function setup(initial: StoredSession | null, refreshAheadMs?: number) {
  const store = createMemoryTokenStore(initial);
  const ended: SessionEndReason[] = [];
  const ex = manualExchange();
  const session = createAuthSession({
    store,
    exchange: ex.exchange,
    onSessionEnded: (reason) => ended.push(reason),
    refreshAheadMs,
    now: () => NOW,
  });
  return { store, ended, session, ...ex };
}

const flush = () => new Promise((resolve) => setTimeout(resolve, 0));

describe('refresh is single-flight', () => {
  it('concurrent callers share one exchange and all get its result', async () => {
    const t = setup(stored(1, -1_000));
    const results = Promise.all([
      t.session.accessToken(),
      t.session.accessToken(),
      t.session.refresh(),
      t.session.recover('access-1'),
    ]);
    await flush();
    expect(t.calls).toEqual(['refresh-1']);
    t.answer().resolve(tokens(2));
    const [a, b, c, d] = await results;
    expect([a, b, c?.accessToken, d]).toEqual(['access-2', 'access-2', 'access-2', true]);
    expect(await t.store.load()).toMatchObject({
      refreshToken: 'refresh-2',
      expiresAt: NOW + 15 * 60_000,
    });
    expect(t.exchange).toHaveBeenCalledTimes(1);
  });

  it('a later refresh, after the first settled, is a new exchange with the new token', async () => {
    const t = setup(stored(1, 0));
    const first = t.session.refresh();
    await flush();
    t.answer().resolve(tokens(2));
    await first;
    const second = t.session.refresh();
    await flush();
    expect(t.calls).toEqual(['refresh-1', 'refresh-2']);
    t.answer().resolve(tokens(3));
    expect((await second)?.accessToken).toBe('access-3');
  });

  it('a refresh under way is joined even while the stored token has time left', async () => {
    const t = setup(stored(1, 10 * 60_000));
    const refreshed = t.session.refresh();
    const token = t.session.accessToken();
    await flush();
    t.answer().resolve(tokens(2));
    await refreshed;
    expect(await token).toBe('access-2');
    expect(t.exchange).toHaveBeenCalledTimes(1);
  });

  it('recovering from a rejected token that was already replaced retries without an exchange', async () => {
    const t = setup(stored(2, 10 * 60_000));
    expect(await t.session.recover('access-1')).toBe(true);
    expect(t.exchange).not.toHaveBeenCalled();
  });

  it("a rejected token of another account is never retried with this one's", async () => {
    const jwt = (sub: string, n: number) =>
      `e30.${btoa(JSON.stringify({ sub, n })).replace(/=+$/, '')}.c2ln`;
    const t = setup({ ...stored(2, 10 * 60_000), accessToken: jwt(user.id, 2) });
    expect(await t.session.recover(jwt('someone-else', 1))).toBe(false);
    expect(await t.session.recover(jwt(user.id, 1))).toBe(true);

    // Rejected with the current token; someone else signs in while the refresh is under way.
    const recovering = t.session.recover(jwt(user.id, 2));
    await flush();
    await t.session.start({ ...tokens(7), user: { ...user, id: 'u2' } });
    t.answer().resolve(tokens(3));
    expect(await recovering).toBe(false);
    expect(t.exchange).toHaveBeenCalledTimes(1);
  });
});

describe('refresh ahead of expiry', () => {
  it('uses the stored token while it has more than a minute left', async () => {
    const t = setup(stored(1, 61_000));
    expect(await t.session.accessToken()).toBe('access-1');
    expect(t.exchange).not.toHaveBeenCalled();
  });

  it('refreshes when the token expires within the minute', async () => {
    const t = setup(stored(1, 59_000));
    const token = t.session.accessToken();
    await flush();
    t.answer().resolve(tokens(2));
    expect(await token).toBe('access-2');
  });

  it('honours refreshAheadMs', async () => {
    const t = setup(stored(1, 4 * 60_000), 5 * 60_000);
    const token = t.session.accessToken();
    await flush();
    expect(t.calls).toEqual(['refresh-1']);
    t.answer().resolve(tokens(2));
    expect(await token).toBe('access-2');
  });

  it('keeps a still-valid token when refreshing ahead fails for a network reason', async () => {
    const t = setup(stored(1, 30_000));
    const token = t.session.accessToken();
    await flush();
    t.answer().reject(new TypeError('fetch failed'));
    expect(await token).toBe('access-1');
    expect((await t.store.load())?.refreshToken).toBe('refresh-1');
    expect(t.ended).toEqual([]);
  });

  it('after a failed refresh ahead, the valid token is used for a while without new tries', async () => {
    let clock = NOW;
    const ex = manualExchange();
    const session = createAuthSession({
      store: createMemoryTokenStore(stored(1, 30_000)),
      exchange: ex.exchange,
      now: () => clock,
    });
    const first = session.accessToken();
    await flush();
    ex.answer().reject(new TypeError('fetch failed'));
    expect(await first).toBe('access-1');
    clock += AHEAD_RETRY_MS - 1;
    expect(await session.accessToken()).toBe('access-1');
    expect(ex.calls).toHaveLength(1);
    clock += 1;
    const again = session.accessToken();
    await flush();
    expect(ex.calls).toHaveLength(2);
    ex.answer().resolve(tokens(2));
    expect(await again).toBe('access-2');
  });

  it('an expired token and a network failure: the error propagates, the session stays', async () => {
    const t = setup(stored(1, -1));
    const token = t.session.accessToken();
    await flush();
    t.answer().reject(new TypeError('fetch failed'));
    await expect(token).rejects.toThrow('fetch failed');
    expect((await t.store.load())?.refreshToken).toBe('refresh-1');
    expect(t.ended).toEqual([]);
  });

  it('is null, and never exchanges, when signed out', async () => {
    const t = setup(null);
    expect(await t.session.accessToken()).toBeNull();
    expect(await t.session.refresh()).toBeNull();
    expect(t.exchange).not.toHaveBeenCalled();
  });
});

describe("the token's expiry on this device's clock", () => {
  /** Tokens as the real server issues them: a JWT with `iat`, living `ttlMs` from `issuedAt`. */
  const issued = (n: number, issuedAt: number, ttlMs: number): AuthTokens => {
    const claims = btoa(JSON.stringify({ sub: user.id, iat: issuedAt / 1000, n }));
    return {
      ...tokens(n),
      accessToken: `e30.${claims.replace(/=+$/, '')}.c2ln`,
      expiresAt: new Date(issuedAt + ttlMs).toISOString(),
    };
  };

  /** A session signed in at server time NOW on a device whose clock is `ahead` of it. */
  async function signedIn(ahead: number, ttlMs: number) {
    let clock = NOW + ahead;
    let n = 1;
    const exchange = vi.fn(async () => issued(++n, clock - ahead, ttlMs));
    const session = createAuthSession({
      store: createMemoryTokenStore(),
      exchange,
      now: () => clock,
    });
    await session.start(issued(1, NOW, ttlMs));
    return { session, exchange, pass: (ms: number) => void (clock += ms) };
  }

  it('a device clock 20 minutes fast (or slow) does not refresh before every request', async () => {
    for (const ahead of [20 * 60_000, -20 * 60_000]) {
      const t = await signedIn(ahead, 15 * 60_000);
      for (let i = 0; i < 3; i++) {
        await t.session.accessToken();
        t.pass(60_000);
      }
      expect(t.exchange).not.toHaveBeenCalled();
      // Nor is a token the server has expired used for long: refreshed a minute ahead.
      t.pass(11 * 60_000);
      await t.session.accessToken();
      expect(t.exchange).toHaveBeenCalledTimes(1);
    }
  });

  it('a token living a minute is refreshed at half its life, not by every request', async () => {
    const t = await signedIn(0, 60_000);
    for (let i = 0; i < 3; i++) {
      expect(await t.session.accessToken()).toContain('e30.');
      t.pass(10_000);
    }
    expect(t.exchange).not.toHaveBeenCalled();
    t.pass(1);
    await t.session.accessToken(); // under 30 s left
    await t.session.accessToken();
    expect(t.exchange).toHaveBeenCalledTimes(1);
  });
});

describe('a refresh that does not answer', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  const hanging = () => {
    const signals: AbortSignal[] = [];
    const answers: ((t: AuthTokens) => void)[] = [];
    const exchange = vi.fn(
      (_token: string, signal: AbortSignal) =>
        new Promise<AuthTokens>((resolve) => {
          signals.push(signal);
          answers.push(resolve);
        }),
    );
    const store = createMemoryTokenStore(stored(1, -1));
    const session = createAuthSession({ store, exchange, now: () => NOW });
    const outcomeOf = (promise: Promise<unknown>) => {
      const seen = { value: 'pending' as unknown };
      promise.then(
        (value) => (seen.value = value),
        (error: unknown) => (seen.value = error),
      );
      return seen;
    };
    return { signals, answers, exchange, store, session, outcomeOf };
  };

  it('fails its callers after REFRESH_TIMEOUT_MS but runs on: later callers join it, a late answer is kept', async () => {
    const h = hanging();
    const first = h.outcomeOf(h.session.accessToken());
    await vi.advanceTimersByTimeAsync(REFRESH_TIMEOUT_MS - 1);
    expect(first.value).toBe('pending');
    await vi.advanceTimersByTimeAsync(1);
    expect(String(first.value)).toContain('auth.refresh took over');
    // Not aborted, and not sent again: the server may have rotated the token already, and the
    // same token again after its grace would end the session.
    expect(h.signals[0]!.aborted).toBe(false);
    const second = h.outcomeOf(h.session.accessToken());
    await vi.advanceTimersByTimeAsync(1000);
    expect(h.exchange).toHaveBeenCalledTimes(1);
    h.answers[0]!(tokens(2));
    await vi.advanceTimersByTimeAsync(0);
    expect(second.value).toBe('access-2');
    expect((await h.store.load())?.refreshToken).toBe('refresh-2');
  });

  it('is abandoned (aborted) after REFRESH_ABANDON_MS, leaving the session for the next try', async () => {
    const h = hanging();
    void h.session.accessToken().catch(() => undefined);
    await vi.advanceTimersByTimeAsync(REFRESH_ABANDON_MS);
    expect(h.signals[0]!.aborted).toBe(true);
    expect((await h.store.load())?.refreshToken).toBe('refresh-1');
    const next = h.outcomeOf(h.session.accessToken());
    await vi.advanceTimersByTimeAsync(0);
    expect(h.exchange).toHaveBeenCalledTimes(2);
    h.answers[1]!(tokens(2));
    await vi.advanceTimersByTimeAsync(0);
    expect(next.value).toBe('access-2');
  });
});

describe('the end of a session', () => {
  it('a refused refresh clears the store and says so once, however many callers saw it', async () => {
    const t = setup(stored(1, -1));
    const all = Promise.all([t.session.accessToken(), t.session.recover('access-1')]);
    await flush();
    t.answer().reject(serverError('UNAUTHORIZED'));
    expect(await all).toEqual([null, false]);
    expect(await t.store.load()).toBeNull();
    expect(t.ended).toEqual(['refresh_failed']);
    expect(await t.session.refresh()).toBeNull();
    expect(t.ended).toEqual(['refresh_failed']);
  });

  it('other server errors (rate limit) leave the session alone', async () => {
    const t = setup(stored(1, -1));
    const refreshed = t.session.refresh();
    await flush();
    t.answer().reject(serverError('TOO_MANY_REQUESTS'));
    await expect(refreshed).rejects.toThrow('TOO_MANY_REQUESTS');
    expect((await t.store.load())?.refreshToken).toBe('refresh-1');
    expect(t.ended).toEqual([]);
  });

  it('a sign-out while a refresh is in flight is not undone by its answer', async () => {
    const t = setup(stored(1, -1));
    const refreshed = t.session.refresh();
    await flush();
    await t.store.clear();
    t.answer().resolve(tokens(2));
    expect(await refreshed).toBeNull();
    expect(await t.store.load()).toBeNull();
  });

  it('signOut tells the server with a valid token, clears, and reports signed_out', async () => {
    const t = setup(stored(1, 10 * 60_000));
    const revoke = vi.fn(() => Promise.resolve({ ok: true }));
    await t.session.signOut(revoke);
    expect(revoke).toHaveBeenCalledWith('access-1');
    expect(await t.store.load()).toBeNull();
    expect(t.ended).toEqual(['signed_out']);
  });

  it('signOut ignores the server saying UNAUTHORIZED: the session is over either way', async () => {
    const t = setup(stored(1, 10 * 60_000));
    await t.session.signOut(() => Promise.reject(serverError('UNAUTHORIZED')));
    expect(await t.store.load()).toBeNull();
    expect(t.ended).toEqual(['signed_out']);
  });

  it('a refresh refused during signOut reports signed_out, not refresh_failed', async () => {
    const t = setup(stored(1, -1));
    const revoke = vi.fn(() => Promise.reject(serverError('UNAUTHORIZED')));
    const out = t.session.signOut(revoke);
    await flush();
    t.answer().reject(serverError('UNAUTHORIZED'));
    await out;
    expect(revoke).not.toHaveBeenCalled();
    expect(t.ended).toEqual(['signed_out']);
  });

  it('signOut offline still signs this device out, and rejects so the app knows', async () => {
    const t = setup(stored(1, 10 * 60_000));
    await expect(
      t.session.signOut(() => Promise.reject(new TypeError('fetch failed'))),
    ).rejects.toThrow('fetch failed');
    expect(await t.store.load()).toBeNull();
    expect(t.ended).toEqual(['signed_out']);
  });

  it('signOut when signed out is quiet', async () => {
    const t = setup(null);
    const revoke = vi.fn(() => Promise.resolve());
    await t.session.signOut(revoke);
    expect(revoke).not.toHaveBeenCalled();
    expect(t.ended).toEqual([]);
  });
});

describe('device cookies', () => {
  const forUser = (id: string, n: number): AuthTokens => ({
    ...tokens(n),
    user: { ...user, id },
    deviceCookie: `cookie-${id}-${n}`,
  });

  it('outlive the session, newest first, one per account, at most MAX_DEVICE_COOKIES', async () => {
    const t = setup(null);
    await t.session.start(forUser('a', 1));
    await t.session.start(forUser('b', 1));
    await t.session.start(forUser('a', 2));
    expect(await t.session.deviceCookies()).toEqual(['cookie-a-2', 'cookie-b-1']);

    await t.session.signOut(() => Promise.resolve());
    expect(await t.store.load()).toBeNull();
    expect(await t.session.deviceCookies()).toEqual(['cookie-a-2', 'cookie-b-1']);

    for (let i = 0; i < MAX_DEVICE_COOKIES + 2; i++) await t.session.start(forUser(`u${i}`, 1));
    const kept = await t.session.deviceCookies();
    expect(kept).toHaveLength(MAX_DEVICE_COOKIES);
    expect(kept[0]).toBe(`cookie-u${MAX_DEVICE_COOKIES + 1}-1`);
  });

  it('a refresh answer renews the account’s cookie', async () => {
    const t = setup(stored(1, -1));
    const refreshing = t.session.refresh();
    await flush();
    t.answer().resolve(tokens(2));
    await refreshing;
    expect(await t.session.deviceCookies()).toEqual(['cookie-2']);
  });

  it('a store that cannot keep the cookie still signs in', async () => {
    const inner = createMemoryTokenStore();
    const session = createAuthSession({
      store: {
        load: () => inner.load(),
        save: (next) => inner.save(next),
        clear: () => inner.clear(),
        loadDeviceCookies: () => [],
        saveDeviceCookies: () => Promise.reject(new Error('disk full')),
      },
      exchange: () => Promise.reject(new Error('unused')),
      now: () => NOW,
    });
    await expect(session.start(tokens(1))).resolves.toMatchObject({ accessToken: 'access-1' });
    expect(await session.deviceCookies()).toEqual([]);
  });

  it('a store without cookie methods keeps them for the life of the session object', async () => {
    const inner = createMemoryTokenStore();
    const session = createAuthSession({
      store: {
        load: () => inner.load(),
        save: (next) => inner.save(next),
        clear: () => inner.clear(),
      },
      exchange: () => Promise.reject(new Error('unused')),
      now: () => NOW,
    });
    await session.start(tokens(1));
    await session.signOut(() => Promise.resolve());
    expect(await session.deviceCookies()).toEqual(['cookie-1']);
  });
});
