import { issuedAtOf, subjectOf } from './base64';
import { errorCodeOf } from './errors';
import type { KeptDeviceCookie, StoredSession, TokenStore } from './tokenStore';

export type SessionEndReason = 'refresh_failed' | 'signed_out';

/** The token part of the server's `status: 'ok'` answer (register, login, OTP verify, refresh). */
export type AuthTokens = {
  accessToken: string;
  refreshToken: string;
  /** ISO 8601, as the server sends it. */
  expiresAt: string;
  sessionId: string;
  user: { id: string; uniqueId: string; username: string | null };
  deviceCookie: string;
};

/** As many as a login may show (the server's limit). */
export const MAX_DEVICE_COOKIES = 8;

export type AuthSessionOptions = {
  store: TokenStore;
  /**
   * Calls `auth.refresh` on a client without the auth link (which would recurse into this);
   * `signal` aborts it when it takes longer than `REFRESH_TIMEOUT_MS`.
   */
  exchange: (refreshToken: string, signal: AbortSignal) => Promise<AuthTokens>;
  onSessionEnded?: (reason: SessionEndReason) => void;
  /** Refresh when the access token expires within this long (at most half its lifetime). */
  refreshAheadMs?: number;
  now?: () => number;
};

export type AuthSession = {
  /** The stored session, or null when signed out. */
  current(): Promise<StoredSession | null>;
  /** A token to send now: refreshed first when it is about to expire; null when signed out. */
  accessToken(): Promise<string | null>;
  /** The session whose access token `accessToken` answers, read once: the token with its user. */
  accessSession(): Promise<StoredSession | null>;
  /**
   * The stored session while its access token has not expired, as it is: never a refresh (a page
   * that is closing cannot wait for one; its last requests go with what it has).
   */
  unexpired(): Promise<StoredSession | null>;
  /**
   * Exchanges the refresh token now. Concurrent callers share one exchange, because the server
   * treats a reused refresh token as theft and revokes the session. Resolves null when there is
   * no session (any more); rejects only with errors that leave the session alive (network, rate
   * limit).
   */
  refresh(): Promise<StoredSession | null>;
  /**
   * After the server rejected `rejectedToken`: true when a newer token of the same account is
   * ready to retry with.
   */
  recover(rejectedToken: string): Promise<boolean>;
  /** Keeps the tokens of a successful sign-in. */
  start(tokens: AuthTokens): Promise<StoredSession>;
  /** The device cookies to show at a login, newest first. */
  deviceCookies(): Promise<string[]>;
  /**
   * Signs out locally; `revoke` tells the server (its UNAUTHORIZED means already ended), with the
   * token as stored (no refresh first) when `refresh` is false.
   */
  signOut(
    revoke: (accessToken: string) => Promise<unknown>,
    options?: { refresh?: boolean },
  ): Promise<void>;
};

export const DEFAULT_REFRESH_AHEAD_MS = 60_000;
/** How long a failed refresh ahead of expiry waits before the next try. */
export const AHEAD_RETRY_MS = 5_000;
/**
 * How long a caller waits for a refresh before it counts as failed (as offline does): every
 * request waits for it, and a request that never answers (a dead connection the OS has not
 * noticed) would hold them all for good. A refresh is one small request, which takes a few
 * seconds at worst on a slow mobile network.
 */
export const REFRESH_TIMEOUT_MS = 15_000;
/**
 * How long the refresh itself runs on before it is abandoned (aborted). Until then it stays the
 * one exchange: later callers join it, and a late answer is kept. Sending the same refresh token
 * again instead would be taken for theft once the server's grace for a lost answer (30 s) is
 * past, ending the session, if the server had rotated it already.
 */
export const REFRESH_ABANDON_MS = 120_000;

/**
 * `receivedAt` is this device's clock when the tokens arrived. The expiry is kept on that clock:
 * the server's `expiresAt` read on a device clock that is minutes fast looks past (every request
 * would refresh first, until the account's refresh limit refuses them), and one that is slow
 * keeps using a token the server already refuses. The token's own lifetime (`exp - iat`) from
 * its arrival ends at most a round trip (and `iat`'s rounding to the second) after the server's.
 */
export function toStoredSession(tokens: AuthTokens, receivedAt: number): StoredSession {
  const serverExpiry = Date.parse(tokens.expiresAt);
  const lifetime = serverExpiry - (issuedAtOf(tokens.accessToken) ?? NaN);
  const known = lifetime > 0;
  // Copy field by field: the server's answer carries more (status) that has no place in a store.
  return {
    accessToken: tokens.accessToken,
    refreshToken: tokens.refreshToken,
    expiresAt: known ? receivedAt + lifetime : serverExpiry,
    ...(known ? { issuedAt: receivedAt } : {}),
    sessionId: tokens.sessionId,
    user: { id: tokens.user.id, uniqueId: tokens.user.uniqueId, username: tokens.user.username },
  };
}

export function createAuthSession(options: AuthSessionOptions): AuthSession {
  const { store } = options;
  const aheadMs = options.refreshAheadMs ?? DEFAULT_REFRESH_AHEAD_MS;
  const now = options.now ?? Date.now;
  let inflight: Promise<StoredSession | null> | undefined;
  // The refresh token of the last session whose end was announced: onSessionEnded fires once per
  // session even when several requests discover the end at the same time.
  let endedFor: string | undefined;
  // After a failed refresh ahead of expiry, the still-valid token is used as is until then.
  let aheadPausedUntil = 0;
  // While signing out, a refresh that fails on the way is part of the sign-out, not a surprise.
  let endReason: SessionEndReason | undefined;

  const current = async () => (await store.load()) ?? null;

  // Used when the store cannot keep device cookies itself.
  let ownCookies: KeptDeviceCookie[] = [];
  const loadCookies = async () => (await store.loadDeviceCookies?.()) ?? ownCookies;
  /**
   * Every sign-in answer carries a fresh cookie: it replaces the account's older one. Keeping it
   * is best effort: the tokens are kept already, so a store failing here must not fail the
   * sign-in or refresh; the device only lacks the cookie's exemption at its next login.
   */
  async function keepCookie(tokens: AuthTokens): Promise<void> {
    try {
      const kept = (await loadCookies()).filter((c) => c.userId !== tokens.user.id);
      const next = [{ userId: tokens.user.id, cookie: tokens.deviceCookie }, ...kept].slice(
        0,
        MAX_DEVICE_COOKIES,
      );
      if (store.saveDeviceCookies) await store.saveDeviceCookies(next);
      else ownCookies = next;
    } catch {
      // See above: nothing to undo, and nothing the app could do about it now.
    }
  }

  async function end(reason: SessionEndReason, session: StoredSession): Promise<void> {
    if (endedFor === session.refreshToken) return;
    endedFor = session.refreshToken;
    await store.clear();
    options.onSessionEnded?.(reason);
  }

  async function exchangeOnce(): Promise<StoredSession | null> {
    const session = await current();
    if (!session) return null;
    let tokens: AuthTokens;
    try {
      tokens = await exchangeWithin(session.refreshToken);
    } catch (error) {
      if (errorCodeOf(error) !== 'UNAUTHORIZED') throw error;
      // End only the session that failed: a sign-in meanwhile has tokens of its own.
      const latest = await current();
      if (latest?.refreshToken !== session.refreshToken) return latest;
      await end(endReason ?? 'refresh_failed', session);
      return null;
    }
    // A sign-out or a new sign-in while the exchange was in flight wins over its answer.
    const latest = await current();
    if (latest?.refreshToken !== session.refreshToken) return latest;
    const next = toStoredSession(tokens, now());
    await store.save(next);
    await keepCookie(tokens);
    return next;
  }

  /** The exchange, aborted if it has not answered in `REFRESH_ABANDON_MS`. */
  async function exchangeWithin(refreshToken: string): Promise<AuthTokens> {
    const controller = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const abandoned = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const error = new Error(`@mvp/sdk: auth.refresh abandoned after ${REFRESH_ABANDON_MS} ms`);
        controller.abort(error);
        reject(error); // also when the exchange does not heed the signal
      }, REFRESH_ABANDON_MS);
    });
    try {
      return await Promise.race([options.exchange(refreshToken, controller.signal), abandoned]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Waits for the one exchange under way (started if none) for at most `REFRESH_TIMEOUT_MS`. */
  function refresh(): Promise<StoredSession | null> {
    const exchange = (inflight ??= exchangeOnce().finally(() => {
      inflight = undefined;
    }));
    let timer: ReturnType<typeof setTimeout> | undefined;
    const gaveUp = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`@mvp/sdk: auth.refresh took over ${REFRESH_TIMEOUT_MS} ms`)),
        REFRESH_TIMEOUT_MS,
      );
    });
    return Promise.race([exchange, gaveUp]).finally(() => clearTimeout(timer));
  }

  async function accessSession(): Promise<StoredSession | null> {
    const session = await current();
    if (!session) return null;
    // A refresh already under way (ahead of expiry, or after the server ended a socket) decides
    // which token is current; only a token with time left and nothing pending is used as is.
    const valid = session.expiresAt > now();
    // A token living a minute or two (a server may be set so) would otherwise be refreshed by
    // every request, from the moment it arrived.
    const ahead =
      session.issuedAt === undefined
        ? aheadMs
        : Math.min(aheadMs, (session.expiresAt - session.issuedAt) / 2);
    if (!inflight && session.expiresAt - now() > ahead) return session;
    if (!inflight && valid && now() < aheadPausedUntil) return session;
    try {
      return await refresh();
    } catch (error) {
      // Refreshing ahead is a courtesy: while the old token is still valid, an exchange that
      // failed (offline, rate limited) must not fail the request that asked for it, nor be
      // tried again by every request that follows (a busy client would hammer auth.refresh).
      if (valid) {
        aheadPausedUntil = now() + AHEAD_RETRY_MS;
        return session;
      }
      throw error;
    }
  }

  const accessToken = async () => (await accessSession())?.accessToken ?? null;
  const unexpired = async () => {
    const session = await current();
    return session && session.expiresAt > now() ? session : null;
  };

  return {
    current,
    accessToken,
    accessSession,
    unexpired,
    refresh,
    async recover(rejectedToken) {
      // A retry goes out only as the account that made the request: after a sign-out and a
      // sign-in as someone else, a rejected contact request or block must not be sent again as
      // the new account. The server's tokens are JWTs naming their user (`sub`).
      const owner = subjectOf(rejectedToken);
      const sameAccount = (session: StoredSession | null) =>
        session !== null && (owner === undefined || session.user.id === owner);
      const session = await current();
      if (!session) return false;
      // Another request already rotated the tokens: the retry just needs the newer one.
      if (session.accessToken !== rejectedToken) return sameAccount(session);
      return sameAccount(await refresh());
    },
    async start(tokens) {
      const session = toStoredSession(tokens, now());
      await store.save(session);
      await keepCookie(tokens);
      return session;
    },
    deviceCookies: async () => (await loadCookies()).map((c) => c.cookie),
    async signOut(revoke, options = {}) {
      endReason = 'signed_out';
      try {
        const token =
          options.refresh === false
            ? ((await unexpired())?.accessToken ?? null)
            : await accessToken();
        if (token) {
          await revoke(token).catch((error: unknown) => {
            // UNAUTHORIZED: the server had already ended this session, which is the goal.
            if (errorCodeOf(error) !== 'UNAUTHORIZED') throw error;
          });
        }
      } finally {
        // Signed out on this device even when the server could not be told (the caller hears why).
        const session = await current();
        if (session) await end('signed_out', session);
        endReason = undefined;
      }
    },
  };
}
