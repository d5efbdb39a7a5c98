import type { RateLimitRule } from './ports/RateLimiter';
import type { AuthInfo, Logger, Ports } from './ports';

export type ApiSettings = {
  /** The server's version, reported by system.info. */
  version: string;
  /** Budget per client address across all procedures. */
  ipRateLimit: RateLimitRule;
};

export type Context = {
  ports: Ports;
  settings: ApiSettings;
  requestId: string;
  log: Logger;
  ip: string;
  transport: 'http' | 'ws';
  auth: AuthInfo | null;
  /** A token was presented and refused: authed procedures answer UNAUTHORIZED. */
  tokenRejected: boolean;
};

export type ContextInput = {
  requestId: string;
  ip: string;
  transport: 'http' | 'ws';
  token: string | null;
};

export async function createContext(
  ports: Ports,
  settings: ApiSettings,
  input: ContextInput,
): Promise<Context> {
  const auth = input.token ? await ports.authenticate(input.token) : null;
  return {
    ports,
    settings,
    requestId: input.requestId,
    log: ports.logger.child({ requestId: input.requestId, transport: input.transport }),
    ip: input.ip,
    transport: input.transport,
    auth,
    tokenRejected: Boolean(input.token) && !auth,
  };
}
