import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AnyProcedure } from '@trpc/server';
import { getHTTPStatusCodeFromError } from '@trpc/server/http';
import { AppError, appRouter, type Metrics, type RateLimiter, type RateLimitRule } from '@mvp/api';
import type { SendError } from './avatarRoutes';
import { REST_PREFIX } from './openapi';
import type { RestMatch, RestProcedure } from './restRoutes';
import { trpcCallsOf, trpcRefusal, type TrpcCalls } from './trpcRefusal';

/**
 * Calls one HTTP request (or WebSocket message) may batch. Unbounded, one request ran thousands
 * of calls at once; the SDK batches at most this many (httpBatchLink's maxItems).
 */
export const MAX_BATCH_SIZE = 50;

export const TRPC_PATH = '/trpc';

/** A request to one of the two API surfaces, and what it calls, known before its body is read. */
export type ApiRequest =
  | { surface: 'trpc'; procedurePath: string; calls: TrpcCalls }
  /** `path` is under REST_PREFIX, as the REST shim routes it. */
  | { surface: 'rest'; path: string };

export function apiRequestOf(req: IncomingMessage, pathname: string): ApiRequest | null {
  if (pathname.startsWith(`${TRPC_PATH}/`)) {
    const url = req.url ?? '/';
    const query = url.indexOf('?');
    const procedurePath = pathname.slice(TRPC_PATH.length + 1);
    const search = query < 0 ? '' : url.slice(query);
    return {
      surface: 'trpc',
      procedurePath,
      calls: trpcCallsOf(procedurePath, search, MAX_BATCH_SIZE),
    };
  }
  if (pathname === REST_PREFIX || pathname.startsWith(`${REST_PREFIX}/`)) {
    return { surface: 'rest', path: pathname.slice(REST_PREFIX.length) || '/' };
  }
  return null;
}

/**
 * Headers of every API answer. Login, register and refresh answer tokens, `calls.iceServers`
 * TURN credentials, and everything else someone's private data: no cache may keep any of it
 * (RFC 6749 §5.1 requires `no-store` on token answers).
 */
export function setApiHeaders(res: ServerResponse): void {
  res.setHeader('cache-control', 'no-store');
}

/**
 * A batch costs what its calls would; a batch too big to run costs what the largest one would.
 * Never more than the whole budget: with a budget under 50 a full batch would be refused for
 * good, its Retry-After never enough.
 */
function pointsOf(api: ApiRequest, rule: RateLimitRule): number {
  const calls = api.surface === 'trpc' ? Math.min(api.calls.paths.length, MAX_BATCH_SIZE) : 1;
  return Math.min(calls, rule.points);
}

export type ApiGateDeps = {
  limiter: RateLimiter;
  /** The per-address budget the procedures spend (ApiSettings.ipRateLimit). */
  addressRule: RateLimitRule;
  metrics: Metrics;
  restRoute: (method: string, path: string) => RestMatch;
  sendError: SendError;
  clientIp: (req: IncomingMessage) => string;
};

// Flat at run time ('system.info'), whatever the nested type says.
const procedures = appRouter._def.procedures as unknown as Record<string, AnyProcedure | undefined>;

export function createApiGate(deps: ApiGateDeps) {
  /** What a refused request would have called, for the metrics: known procedures only. */
  const proceduresOf = (req: IncomingMessage, api: ApiRequest): RestProcedure[] => {
    if (api.surface === 'rest') {
      const match = deps.restRoute(req.method === 'HEAD' ? 'GET' : (req.method ?? 'GET'), api.path);
      return match && 'procedure' in match ? [match.procedure] : [];
    }
    if (api.calls.tooMany) return [];
    return api.calls.paths.flatMap((path) => {
      const procedure = procedures[path];
      return procedure ? [{ path, type: procedure._def.type }] : [];
    });
  };

  /**
   * Refuses an API request before its body is read, in the shape its surface answers in (a
   * tRPC client must read tRPC's). The body is not worth reading: the connection closes.
   */
  const refuse = (
    req: IncomingMessage,
    res: ServerResponse,
    api: ApiRequest,
    error: AppError,
    requestId: string,
  ): void => {
    const status = getHTTPStatusCodeFromError(error);
    if (!req.complete) res.setHeader('connection', 'close');
    const retryAfterMs = error.retryAfterMs;
    if (retryAfterMs !== undefined) {
      res.setHeader('retry-after', String(Math.ceil(retryAfterMs / 1000)));
    }
    if (api.surface === 'rest') {
      deps.sendError(res, status, error.appCode, error.message, requestId, { retryAfterMs });
      return;
    }
    res.statusCode = status;
    res.setHeader('content-type', 'application/json');
    res.end(trpcRefusal(api.calls, error, requestId));
  };

  /**
   * Spends the address's budget for the request before a byte of its body is read. Spent inside
   * the procedures only, it was never spent by requests refused before them (broken JSON, a
   * wrong type, an oversize chunked body, a bad query), and a valid 1 MiB body was read and
   * parsed before the budget was asked. False when refused (answered here).
   */
  const admit = async (
    req: IncomingMessage,
    res: ServerResponse,
    api: ApiRequest,
    requestId: string,
  ): Promise<boolean> => {
    const started = performance.now();
    const decision = await deps.limiter.consume(
      deps.addressRule,
      deps.clientIp(req),
      pointsOf(api, deps.addressRule),
    );
    if (decision.allowed) return true;
    const { retryAfterMs } = decision;
    refuse(
      req,
      res,
      api,
      new AppError('TOO_MANY_REQUESTS', 'Too many requests', { retryAfterMs }),
      requestId,
    );
    // Counted as the procedures counted their refusals, so the dashboards see no change.
    const seconds = (performance.now() - started) / 1000;
    for (const { path, type } of proceduresOf(req, api)) {
      deps.metrics.observeProcedure({ path, type, outcome: 'TOO_MANY_REQUESTS', seconds });
    }
    return false;
  };

  return { admit, refuse };
}
