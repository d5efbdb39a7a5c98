import { createHmac } from 'node:crypto';

export type IceSettings = {
  stunUrls: string[];
  turnUrls: string[];
  /** coturn's `static-auth-secret` (`use-auth-secret`); TURN is offered only when set. */
  turnSecret: string | undefined;
  turnTtlSeconds: number;
};

/**
 * Time-limited TURN credentials in coturn's `use-auth-secret` scheme (the TURN REST API draft):
 * username `<expiry unix seconds>:<userId>`, password base64(HMAC-SHA1(secret, username)). coturn
 * recomputes the password from the same secret and refuses it after the expiry.
 */
export function turnCredentials(secret: string, userId: string, expiresAtSeconds: number) {
  const username = `${expiresAtSeconds}:${userId}`;
  const credential = createHmac('sha1', secret).update(username).digest('base64');
  return { username, credential };
}

export function iceServersFor(settings: IceSettings, userId: string, nowMs: number) {
  const iceServers: { urls: string[]; username?: string; credential?: string }[] = [];
  if (settings.stunUrls.length > 0) iceServers.push({ urls: settings.stunUrls });
  if (settings.turnSecret && settings.turnUrls.length > 0) {
    const expiry = Math.floor(nowMs / 1000) + settings.turnTtlSeconds;
    iceServers.push({
      urls: settings.turnUrls,
      ...turnCredentials(settings.turnSecret, userId, expiry),
    });
  }
  return { iceServers, ttlSeconds: settings.turnTtlSeconds };
}
