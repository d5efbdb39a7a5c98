export type AuthInfo = {
  userId: string;
  sessionId: string;
  deviceId: string;
};

/**
 * Turns a bearer token into who is calling, or null when the token is not valid. The accounts
 * issue supplies the real one; until then every token is refused (fail closed).
 */
export type Authenticator = (token: string) => Promise<AuthInfo | null>;

export const refuseAllTokens: Authenticator = async () => null;
