import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TRPCError } from '@trpc/server';
import { nodeHTTPRequestHandler } from '@trpc/server/adapters/node-http';
import type { ResponseMeta } from '@trpc/server/http';
import { createOpenApiHttpHandler } from 'trpc-to-openapi';
import {
  AppError,
  appRouter,
  createContext,
  type ApiSettings,
  type Context,
  type RateLimiter,
  type RateLimitRule,
} from '@mvp/api';
import { APP_ERROR_TRANSPORT, type TErrorData } from '@mvp/contracts';
import type { Logger as PinoLogger } from 'pino';
import type { Infrastructure } from '../adapters/createPorts';
import { createMemoryRateLimiter } from '../adapters/rateLimiter';
import type { ServerConfig } from '../config';
import type { ServerMetrics } from '../metrics';
import { apiRequestOf, createApiGate, MAX_BATCH_SIZE, setApiHeaders } from './apiGate';
import { createAvatarRoutes, type SendError } from './avatarRoutes';
import { docsHeaders, docsHtml, docsScript, DOCS_SCRIPT_PATH } from './docsPage';
import { openApiJson, REST_PREFIX } from './openapi';
import {
  bearerTokenOf,
  clientIpOf,
  declaresBody,
  hostValid,
  loggablePath,
  originAllowed,
  pathnameOf,
  requestIdOf,
  sameSecret,
} from './requestInfo';
import { createRestRoutes } from './restRoutes';

export { MAX_BATCH_SIZE, TRPC_PATH } from './apiGate';

export type HttpDeps = {
  config: ServerConfig;
  infra: Infrastructure;
  settings: ApiSettings;
  metrics: ServerMetrics;
  logger: PinoLogger;
  /** The base URL clients reach this server at (for the OpenAPI document). */
  baseUrl: () => string;
  isStopping: () => boolean;
};

type Handler = (req: IncomingMessage, res: ServerResponse, requestId: string) => Promise<void>;

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  res.statusCode = status;
  res.setHeader('content-type', 'application/json; charset=utf-8');
  res.end(JSON.stringify(body));
}

/** RFC 6750 §3: a 401 says how to authenticate. */
const BEARER_CHALLENGE = 'Bearer';

/** Errors outside tRPC use the REST shim's shape, so integrators parse one format. */
const sendError: SendError = (res, status, appCode, message, requestId, extra = {}) => {
  if (status === 401) res.setHeader('www-authenticate', BEARER_CHALLENGE);
  const data: TErrorData = {
    code: APP_ERROR_TRANSPORT[appCode],
    httpStatus: status,
    appCode,
    requestId,
    ...(extra.retryAfterMs !== undefined ? { retryAfterMs: extra.retryAfterMs } : {}),
  };
  sendJson(res, status, { code: data.code, message, data });
};

/** A refused rate limit on a plain route, answered as tRPC answers one: 429 with Retry-After. */
function sendTooManyRequests(res: ServerResponse, requestId: string, retryAfterMs: number): void {
  res.setHeader('retry-after', String(Math.ceil(retryAfterMs / 1000)));
  sendError(res, 429, 'TOO_MANY_REQUESTS', 'Too many requests', requestId, { retryAfterMs });
}

const NO_META: ResponseMeta = {};

/**
 * Headers errors call for on both HTTP surfaces: Retry-After (seconds, rounded up) when rate
 * limited, WWW-Authenticate when not signed in.
 */
function responseMeta({ errors }: { errors: TRPCError[] }): ResponseMeta {
  if (errors.length === 0) return NO_META;
  const headers: Record<string, string> = {};
  const limited = errors.find(
    (e): e is AppError => e instanceof AppError && e.retryAfterMs !== undefined,
  );
  const ms = limited?.retryAfterMs;
  if (ms) headers['retry-after'] = String(Math.ceil(ms / 1000));
  if (errors.some((e) => e.code === 'UNAUTHORIZED')) headers['www-authenticate'] = BEARER_CHALLENGE;
  return { headers };
}

export function createHttpHandler(deps: HttpDeps) {
  const { config, infra, settings, metrics, logger } = deps;
  const clientIp = (req: IncomingMessage) => clientIpOf(req, config.trustProxy);
  // In this process, not the shared store: a load balancer probes every instance from the same
  // address, so one budget across N instances would fail them all as N grows; and readiness must
  // not wait on the Redis it is reporting on.
  const probeLimiter = createMemoryRateLimiter();
  const readyzLimit = { name: 'readyz-ip', ...config.httpLimits.readyzIp };
  // Production without a token: no route at all, rather than every metric open to whoever finds
  // the port (compose publishes it).
  const metricsServed = config.metricsToken !== undefined || config.nodeEnv !== 'production';
  if (!metricsServed) logger.warn('/metrics is off: set MVP_METRICS_TOKEN to scrape it');

  /**
   * `route` within `rule`'s budget for the caller's address, else 429 with Retry-After. A store
   * error with no insurance left throws: the catch-all answers 500, the route is not served.
   */
  const limited =
    (limiter: RateLimiter, rule: RateLimitRule, route: Handler): Handler =>
    async (req, res, requestId) => {
      const decision = await limiter.consume(rule, clientIp(req));
      if (!decision.allowed) {
        sendTooManyRequests(res, requestId, decision.retryAfterMs);
        return;
      }
      await route(req, res, requestId);
    };
  // What a browser or a token verifier fetches: one budget across instances, as avatars have,
  // spent together by the docs page, its script and the OpenAPI document it loads.
  const publicDocsLimit = { name: 'public-docs-ip', ...config.httpLimits.publicDocsIp };
  const publicDoc = (route: Handler) => limited(infra.ports.rateLimiter, publicDocsLimit, route);

  const restRoute = createRestRoutes(appRouter);
  const gate = createApiGate({
    limiter: infra.ports.rateLimiter,
    addressRule: settings.ipRateLimit,
    metrics: infra.ports.metrics,
    restRoute,
    sendError,
    clientIp,
  });
  // Every HTTP context belongs to an API request that `gate.admit` let in, its point spent.
  const contextFor = (req: IncomingMessage, requestId: string): Promise<Context> =>
    createContext(infra.ports, settings, {
      addressBudgetSpent: true,
      requestId,
      ip: clientIp(req),
      transport: 'http',
      token: bearerTokenOf(req),
    });

  const onError = ({ error, path }: { error: TRPCError; path?: string }) => {
    if (error.code === 'INTERNAL_SERVER_ERROR')
      logger.error({ err: error.cause ?? error, path }, 'request failed');
  };

  const restHandler = createOpenApiHttpHandler({
    router: appRouter,
    // The shim hands createContext a Fetch Request; the Node request (socket, headers) is res.req.
    createContext: ({ res }) => contextFor(res.req, String(res.req.headers['x-request-id'])),
    // Errors before the context (a broken body, a refused type) carry the request id too.
    errorContext: ({ res }) => ({ requestId: String(res.req.headers['x-request-id']) }),
    maxBodySize: config.httpMaxBodyBytes,
    responseMeta,
    onError,
  });

  const handleAvatarRequest = createAvatarRoutes({
    blobs: infra.ports.blobs,
    avatarMaxBytes: config.avatarMaxBytes,
    contextFor,
    sendJson,
    sendError,
    limiter: infra.ports.rateLimiter,
    serveLimit: { name: 'avatar-get-ip', ...config.httpLimits.avatarGetIp },
    clientIp,
  });

  const routes: Record<string, Handler> = {
    // Not limited: a constant answer with no I/O, which the load balancer and Docker's health
    // check must always get. A budget per address would let anyone who can name their address
    // (X-Forwarded-For behind a trusted proxy, or all traffic as loopback behind a sidecar)
    // spend it and have the instance taken out of service.
    '/healthz': async (_req, res) => sendJson(res, 200, { status: 'ok' }),
    '/readyz': limited(probeLimiter, readyzLimit, async (_req, res) => {
      const checks = await infra.checkReady(2_000);
      const ready = !deps.isStopping() && Object.values(checks).every(Boolean);
      sendJson(res, ready ? 200 : 503, {
        status: ready ? 'ready' : deps.isStopping() ? 'stopping' : 'unavailable',
        checks,
      });
    }),
    // Public keys that verify access tokens, for services that check them on their own.
    '/.well-known/jwks.json': publicDoc(async (_req, res) => {
      res.setHeader('cache-control', 'public, max-age=300');
      sendJson(res, 200, infra.ports.tokens.jwks());
    }),
    '/openapi.json': publicDoc(async (_req, res) => {
      res.setHeader('content-type', 'application/json; charset=utf-8');
      res.end(openApiJson(deps.baseUrl(), settings.version));
    }),
  };
  if (metricsServed) {
    routes['/metrics'] = async (req, res, requestId) => {
      if (config.metricsToken && !sameSecret(bearerTokenOf(req), config.metricsToken)) {
        sendError(res, 401, 'UNAUTHORIZED', 'Metrics need the metrics token', requestId);
        return;
      }
      res.setHeader('content-type', metrics.registry.contentType);
      res.end(await metrics.registry.metrics());
    };
  }
  if (config.docsEnabled) {
    routes['/docs'] = publicDoc(async (_req, res) => {
      for (const [name, value] of Object.entries(docsHeaders(deps.baseUrl()))) {
        res.setHeader(name, value);
      }
      res.setHeader('content-type', 'text/html; charset=utf-8');
      res.end(docsHtml());
    });
    routes[DOCS_SCRIPT_PATH] = publicDoc(async (_req, res) => {
      res.setHeader('content-type', 'text/javascript; charset=utf-8');
      res.setHeader('cache-control', 'public, max-age=86400');
      res.end(await docsScript());
    });
  }

  const allowCors = (req: IncomingMessage, res: ServerResponse): void => {
    // Whatever the origin: a cache must not hand an answer made without CORS headers (an avatar
    // fetched with no Origin, cached for a year) to a page that needs them.
    res.setHeader('vary', 'origin');
    const origin = req.headers.origin;
    if (!origin || !config.allowedOrigins.includes(origin)) return;
    res.setHeader('access-control-allow-origin', origin);
    res.setHeader(
      'access-control-allow-headers',
      'authorization, content-type, trpc-accept, x-request-id',
    );
    res.setHeader('access-control-allow-methods', 'GET, POST, PUT, PATCH, DELETE, OPTIONS');
    res.setHeader('access-control-expose-headers', 'x-request-id, retry-after');
    res.setHeader('access-control-max-age', '600');
  };

  /**
   * The REST shim, after what it does not do itself: it knows only "this method on this path, or
   * nothing", so a wrong method on a real path was a 404 and HEAD a 204 on any path, signed in
   * or not; and it wants a Content-Type on every POST, also one that carries nothing.
   */
  const serveRest = async (
    req: IncomingMessage,
    res: ServerResponse,
    path: string,
    requestId: string,
  ): Promise<void> => {
    const method = req.method === 'HEAD' ? 'GET' : (req.method ?? 'GET');
    const match = restRoute(method, path);
    if (!match) {
      sendError(res, 404, 'NOT_FOUND', 'Not found', requestId);
      return;
    }
    if ('allow' in match) {
      res.setHeader('allow', match.allow.join(', '));
      sendError(res, 405, 'BAD_REQUEST', 'Method not allowed', requestId);
      return;
    }
    // HEAD is served as GET: Node made this response without a body when the request was HEAD.
    req.method = method;
    if (req.headers['content-type'] === undefined && !declaresBody(req)) {
      req.headers['content-type'] = 'application/json';
    }
    req.url = (req.url ?? '/').slice(REST_PREFIX.length) || '/';
    await restHandler(req, res);
  };

  return async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = performance.now();
    const requestId = requestIdOf(req);
    const method = req.method;
    // Only the path is logged: tRPC GET queries carry their input in the query string.
    const pathname = pathnameOf(req);
    req.headers['x-request-id'] = requestId;
    res.setHeader('x-request-id', requestId);
    // Every answer has the type it says; none is to be sniffed into HTML or script.
    res.setHeader('x-content-type-options', 'nosniff');
    if (pathname === null || !hostValid(req)) {
      res.setHeader('connection', 'close');
      const what = pathname === null ? 'request target' : 'Host header';
      sendError(res, 400, 'BAD_REQUEST', `Malformed ${what}`, requestId);
      return;
    }
    res.on('finish', () => {
      logger.info(
        {
          requestId,
          method,
          path: loggablePath(pathname),
          status: res.statusCode,
          ms: Math.round(performance.now() - started),
        },
        'request',
      );
    });
    allowCors(req, res);
    if (req.method === 'OPTIONS') {
      res.statusCode = originAllowed(req.headers.origin, config.allowedOrigins) ? 204 : 403;
      res.end();
      return;
    }
    try {
      const api = apiRequestOf(req, pathname);
      if (api) {
        setApiHeaders(res);
        if (!(await gate.admit(req, res, api, requestId))) return;
      }
      // Avatars have their own (larger) size limit, enforced while the body streams in.
      if (await handleAvatarRequest(req, res, pathname, requestId)) return;
      // Refused before a byte of the body is read; tRPC's maxBodySize covers chunked bodies.
      if (Number(req.headers['content-length'] ?? 0) > config.httpMaxBodyBytes) {
        const tooLarge = new AppError('PAYLOAD_TOO_LARGE', 'Request body too large');
        if (api) gate.refuse(req, res, api, tooLarge, requestId);
        else {
          res.setHeader('connection', 'close');
          sendError(res, 413, tooLarge.appCode, tooLarge.message, requestId);
        }
        return;
      }
      const route = routes[pathname];
      if (route) {
        if (req.method !== 'GET' && req.method !== 'HEAD') {
          res.setHeader('allow', 'GET, HEAD');
          sendError(res, 405, 'BAD_REQUEST', 'Method not allowed', requestId);
          return;
        }
        await route(req, res, requestId);
        return;
      }
      if (api?.surface === 'trpc') {
        await nodeHTTPRequestHandler({
          router: appRouter,
          req,
          res,
          path: api.procedurePath,
          maxBodySize: config.httpMaxBodyBytes,
          maxBatchSize: MAX_BATCH_SIZE,
          createContext: () => contextFor(req, requestId),
          responseMeta,
          onError,
        });
        return;
      }
      if (api?.surface === 'rest') {
        await serveRest(req, res, api.path, requestId);
        return;
      }
      sendError(res, 404, 'NOT_FOUND', 'Not found', requestId);
    } catch (err) {
      logger.error({ err, requestId, path: loggablePath(pathname) }, 'unhandled request error');
      if (res.headersSent) {
        res.destroy();
        return;
      }
      if (!req.complete) res.setHeader('connection', 'close');
      sendError(res, 500, 'INTERNAL_SERVER_ERROR', 'Internal server error', requestId);
    }
  };
}
