import type { Authenticator } from '../../ports';
import type { TokenSigner } from '../../security';

/** Bearer token → caller, from the signature and claims alone (the session is checked per call). */
export function authenticatorFor(tokens: TokenSigner): Authenticator {
  return async (token) => {
    const claims = await tokens.verify(token);
    return (
      claims && { userId: claims.userId, sessionId: claims.sessionId, expiresAt: claims.expiresAt }
    );
  };
}
