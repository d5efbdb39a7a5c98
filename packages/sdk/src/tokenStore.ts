/** One signed-in session as the SDK keeps it between requests (and, with a durable store, restarts). */
export type StoredSession = {
  accessToken: string;
  refreshToken: string;
  /**
   * When the access token expires, in epoch milliseconds by this device's clock: the time it
   * arrived plus its lifetime, so that a device clock set wrong does not make it look expired
   * (or fresh). A session kept by an earlier SDK, or whose token is not a JWT with `iat`, holds
   * the server's time as sent.
   */
  expiresAt: number;
  /**
   * When the access token arrived, by this device's clock (epoch ms); with `expiresAt`, its
   * lifetime. Absent where its lifetime is unknown (see `expiresAt`).
   */
  issuedAt?: number;
  sessionId: string;
  user: { id: string; uniqueId: string; username: string | null };
};

/**
 * A device cookie the server handed this device at a sign-in to `userId`. It outlives the
 * session: shown at the next login to that account, it keeps strangers' failed attempts on the
 * username from locking this device out.
 */
export type KeptDeviceCookie = { userId: string; cookie: string };

/**
 * Where the SDK keeps the session. `load` runs before each HTTP batch and each WebSocket connect,
 * so the store stays the single source of truth (a tab or process sharing it sees rotations);
 * keep it cheap, or cache inside the adapter. Sync and async implementations both fit.
 */
export type TokenStore = {
  load(): Promise<StoredSession | null> | StoredSession | null;
  save(session: StoredSession): Promise<void> | void;
  clear(): Promise<void> | void;
  /**
   * Device cookies, newest first, kept across sign-outs (`clear` must leave them). A store
   * without these two keeps them for as long as the client lives.
   */
  loadDeviceCookies?(): Promise<KeptDeviceCookie[]> | KeptDeviceCookie[];
  saveDeviceCookies?(cookies: KeptDeviceCookie[]): Promise<void> | void;
};

/** The default store: the session lives as long as the process (or page) does. */
export function createMemoryTokenStore(initial: StoredSession | null = null): TokenStore {
  let session = initial;
  let cookies: KeptDeviceCookie[] = [];
  return {
    load: () => session,
    save: (next) => {
      session = next;
    },
    clear: () => {
      session = null;
    },
    loadDeviceCookies: () => cookies,
    saveDeviceCookies: (next) => {
      cookies = next;
    },
  };
}
