export type AuthInfo = {
  userId: string;
  sessionId: string;
  /** When the access token expires (ms): a WebSocket keeps its context, so calls check this. */
  expiresAt: number;
};

/**
 * Turns a bearer token into who is calling, or null when the token is not valid. It checks the
 * signature and claims only; the session itself is checked per call by the SessionGuard.
 */
export type Authenticator = (token: string) => Promise<AuthInfo | null>;

export const refuseAllTokens: Authenticator = async () => null;
