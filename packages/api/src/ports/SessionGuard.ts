export type LiveSession = { userId: string; deviceId: string };

/**
 * Answers whether a session is still live. Checked on every authenticated call (both transports)
 * and cached for a few seconds, so a revocation takes effect everywhere within that bound.
 */
export type SessionGuard = {
  check(sessionId: string): Promise<LiveSession | null>;
  /** Drops the cached answer at once (this instance); other instances expire theirs. */
  forget(sessionId: string): void;
};
