import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { applyWSSHandler, jsonEncoder } from '@trpc/server/adapters/ws';
import { WebSocketServer, type WebSocket } from 'ws';
import {
  appRouter,
  createContext,
  encodeFrame,
  type ApiSettings,
  type Connection,
  type PresenceTracker,
} from '@mvp/api';
import type { Logger as PinoLogger } from 'pino';
import type { Infrastructure } from '../adapters/createPorts';
import type { ServerConfig } from '../config';
import { MAX_BATCH_SIZE, TRPC_PATH } from '../http/createHttpHandler';
import { clientIpOf, originAllowed, pathnameOf, requestIdOf } from '../http/requestInfo';
import type { ServerMetrics } from '../metrics';
import { burstWrites } from './burstWrites';
import { connectionOf, SESSION_ENDED_CLOSE_CODE } from './connection';

export type WsDeps = {
  config: ServerConfig;
  infra: Infrastructure;
  settings: ApiSettings;
  metrics: ServerMetrics;
  logger: PinoLogger;
  presence: PresenceTracker;
  isStopping: () => boolean;
};

export { SESSION_ENDED_CLOSE_CODE };

function refuseUpgrade(socket: Duplex, status: number, reason: string): void {
  socket.end(`HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
}

function tokenOf(params: Record<string, string | undefined> | null | undefined): string | null {
  const token = params?.token;
  return typeof token === 'string' && token.length > 0 ? token : null;
}

/**
 * tRPC over WebSocket on the HTTP server's port. The handshake is refused before any tRPC work
 * when the browser Origin is not allowed (no cookies are used, but a hostile page must still not
 * open sockets on a user's behalf). Oversize frames close that socket only (ws answers 1009).
 */
export function attachWebSockets(httpServer: Server, deps: WsDeps) {
  const { config, infra, settings, metrics, logger, presence } = deps;
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: config.wsMaxPayloadBytes,
    perMessageDeflate: false,
  });

  const connections = new WeakMap<WebSocket, Connection>();

  httpServer.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const pathname = pathnameOf(req);
    if (pathname === null) return refuseUpgrade(socket, 400, 'Bad Request');
    if (pathname !== TRPC_PATH) return refuseUpgrade(socket, 404, 'Not Found');
    if (deps.isStopping()) return refuseUpgrade(socket, 503, 'Service Unavailable');
    if (!originAllowed(req.headers.origin, config.allowedOrigins)) {
      logger.warn({ origin: req.headers.origin }, 'websocket refused: origin not allowed');
      return refuseUpgrade(socket, 403, 'Forbidden');
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      burstWrites(ws, socket);
      connections.set(ws, connectionOf(ws, socket));
      wss.emit('connection', ws, req);
    });
  });

  wss.on('connection', (ws: WebSocket, req: IncomingMessage) => {
    metrics.wsConnections.inc();
    const connectionId = requestIdOf(req);
    ws.on('error', (err) => logger.debug({ connectionId, err: err.message }, 'websocket error'));
    ws.once('close', (code) => {
      metrics.wsConnections.dec();
      logger.debug({ connectionId, code }, 'websocket closed');
    });
  });

  // Open sockets by session, so a revocation (on any instance, via the bus) closes them at once.
  const bySession = new Map<string, Set<WebSocket>>();
  /** Answers the function that forgets it again (it is forgotten when it closes anyway). */
  const track = (sessionId: string, ws: WebSocket) => {
    let sockets = bySession.get(sessionId);
    if (!sockets) bySession.set(sessionId, (sockets = new Set()));
    sockets.add(ws);
    const forget = () => {
      ws.off('close', forget);
      sockets.delete(ws);
      if (sockets.size === 0 && bySession.get(sessionId) === sockets) bySession.delete(sessionId);
    };
    ws.once('close', forget);
    return forget;
  };

  // A token outlives a revoked session by up to its TTL: such a socket's calls are refused, and
  // it must not show its user online either.
  const sessionLive = async (auth: { sessionId: string; userId: string }) =>
    (await infra.ports.sessions.check(auth.sessionId))?.userId === auth.userId;

  const handler = applyWSSHandler({
    wss,
    router: appRouter,
    maxBatchSize: MAX_BATCH_SIZE,
    // JSON text frames as tRPC's default, with a fanned-out event's text built once (see
    // sharedEvents.ts in @mvp/api).
    experimental_encoder: { encode: encodeFrame, decode: (data) => jsonEncoder.decode(data) },
    createContext: async ({ req, res, info }) => {
      const ctx = await createContext(infra.ports, settings, {
        requestId: requestIdOf(req),
        ip: clientIpOf(req, config.trustProxy),
        transport: 'ws',
        token: tokenOf(info.connectionParams),
        connection: connections.get(res),
      });
      if (ctx.auth) {
        // Tracked before the check: a revocation published while it runs closes this socket
        // too (tracked after, the socket missed it and kept its user online).
        const forget = track(ctx.auth.sessionId, res);
        // Checked after the awaits: a socket closed meanwhile has fired its 'close' already, so
        // counting it would keep its user online for good.
        if (!(await sessionLive(ctx.auth)) || res.readyState !== res.OPEN) {
          forget();
          return ctx;
        }
        const { userId } = ctx.auth;
        // Online while any device holds a socket; an expired token does not end that (the
        // socket is refused new calls and the client reconnects with a fresh one).
        presence.connected(userId);
        res.once('close', () => presence.disconnected(userId));
      }
      return ctx;
    },
    keepAlive: { enabled: true, pingMs: config.wsPingMs, pongWaitMs: config.wsPongWaitMs },
    onError: ({ error, path }) => {
      if (error.code === 'INTERNAL_SERVER_ERROR')
        logger.error({ err: error.cause ?? error, path }, 'ws call failed');
    },
  });

  return {
    wss,
    broadcastReconnectNotification: handler.broadcastReconnectNotification,
    /** Closes every socket of these sessions (4401: the client must sign in again). */
    closeSessions(sessionIds: string[]) {
      for (const id of sessionIds) {
        for (const ws of bySession.get(id) ?? [])
          ws.close(SESSION_ENDED_CLOSE_CODE, 'session ended');
      }
    },
  };
}
