/** One signed-in session as the SDK keeps it between requests (and, with a durable store, restarts). */
export type StoredSession = {
  accessToken: string;
  refreshToken: string;
  /** When the access token expires, in epoch milliseconds. */
  expiresAt: number;
  sessionId: string;
  user: { id: string; uniqueId: string; username: string | null };
};

/**
 * Where the SDK keeps the session. `load` runs before each HTTP batch and each WebSocket connect,
 * so the store stays the single source of truth (a tab or process sharing it sees rotations);
 * keep it cheap, or cache inside the adapter. Sync and async implementations both fit.
 */
export type TokenStore = {
  load(): Promise<StoredSession | null> | StoredSession | null;
  save(session: StoredSession): Promise<void> | void;
  clear(): Promise<void> | void;
};

/** The default store: the session lives as long as the process (or page) does. */
export function createMemoryTokenStore(initial: StoredSession | null = null): TokenStore {
  let session = initial;
  return {
    load: () => session,
    save: (next) => {
      session = next;
    },
    clear: () => {
      session = null;
    },
  };
}
