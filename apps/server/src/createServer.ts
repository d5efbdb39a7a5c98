import { randomUUID } from 'node:crypto';
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo } from 'node:net';
import type { DestinationStream, Logger as PinoLogger } from 'pino';
import type { WebSocket } from 'ws';
import {
  createPresenceTracker,
  POSTING_CHANGED_CHANNEL,
  runCallTimeoutsOnce,
  runMessageExpiryOnce,
  runJobsOnce,
  SESSION_REVOKED_CHANNEL,
  type ApiSettings,
  type Clock,
  type PostingChangedMessage,
  type SessionRevokedMessage,
} from '@mvp/api';
import packageJson from '../package.json' with { type: 'json' };
import { createInfrastructure, type Infrastructure } from './adapters/createPorts';
import type { ServerConfig } from './config';
import { createHttpHandler, TRPC_PATH } from './http/createHttpHandler';
import { declaresBody } from './http/requestInfo';
import { createLogger } from './logger';
import { createMetrics } from './metrics';
import { attachWebSockets } from './ws/attachWebSockets';

export const SERVER_VERSION = packageJson.version;

const DAY_MS = 24 * 3600 * 1000;

function apiSettingsFrom(config: ServerConfig): ApiSettings {
  const { auth } = config;
  return {
    version: SERVER_VERSION,
    ipRateLimit: { name: 'ip', ...config.ipRateLimit },
    auth: {
      accessTtlSeconds: auth.jwt.accessTtlSeconds,
      refreshAbsoluteMs: auth.refresh.absoluteDays * DAY_MS,
      refreshIdleMs: auth.refresh.idleDays * DAY_MS,
      otp: auth.otp,
      limits: auth.limits,
      loginBackoff: auth.loginBackoff,
      deleteInactiveAfterDays: auth.deleteInactiveAfterDays,
    },
    people: { searchLimit: config.searchLimit, requestLimit: config.requestLimit },
    messaging: config.messaging,
    keys: config.keys,
    calls: config.calls,
  };
}

export type MvpServer = {
  /** e.g. http://127.0.0.1:3000 */
  url: string;
  /** tRPC over HTTP: `${url}/trpc` */
  trpcUrl: string;
  wsUrl: string;
  docsUrl: string;
  port: number;
  config: ServerConfig;
  settings: ApiSettings;
  logger: PinoLogger;
  infra: Infrastructure;
  /** Graceful: stop accepting, tell WebSocket clients to reconnect, drain, close backends. */
  shutdown(): Promise<void>;
};

/**
 * Slowloris: a client that sends its headers, or its body, a few bytes at a time holds a socket
 * (and what was read of its body) for as long as the server waits. Node 20 waits 60 s for the
 * headers and 300 s for a whole request. Honest clients send their headers at once, and the
 * largest body is an avatar (2 MiB by default: a minute is ~35 KB/s). Node checks the first two
 * every `checkEveryMs`, which is added to each. A WebSocket is no longer a request once upgraded:
 * none applies to it (the `ws` library clears the socket's timeout too).
 */
export type HttpTimeouts = {
  headersMs: number;
  requestMs: number;
  /** A body that stops arriving this long ends its connection, well before `requestMs`. */
  bodyIdleMs: number;
  checkEveryMs: number;
};

export const HTTP_TIMEOUTS: HttpTimeouts = {
  headersMs: 20_000,
  requestMs: 60_000,
  bodyIdleMs: 15_000,
  checkEveryMs: 5_000,
};

/**
 * Ends the connection of a request whose body stops arriving for `ms`. Only while the body comes
 * in: once it is read, the socket's timeout is Node's again (the keep-alive timeout it sets when
 * an answer finishes, which this must not clear).
 */
function limitBodyIdle(req: IncomingMessage, res: ServerResponse, ms: number): void {
  if (!declaresBody(req)) return;
  req.setTimeout(ms, () => req.socket.destroy());
  req.once('end', () => {
    if (!res.writableEnded) req.socket.setTimeout(0);
  });
}

export type CreateServerOptions = {
  /** Where log lines go (stdout by default); tests capture them here. */
  logDestination?: DestinationStream;
  /** Time as the API sees it; tests move it forward to expire tokens. */
  clock?: Clock;
  /** HTTP_TIMEOUTS unless given; tests shorten them. */
  httpTimeouts?: Partial<HttpTimeouts>;
};

function hostForUrl(host: string): string {
  if (host === '0.0.0.0' || host === '::') return '127.0.0.1';
  return host.includes(':') ? `[${host}]` : host;
}

function allClosed(clients: Iterable<WebSocket>): Promise<void> {
  const open = [...clients].filter((c) => c.readyState !== c.CLOSED);
  return Promise.all(open.map((c) => new Promise<void>((r) => c.once('close', () => r())))).then(
    () => undefined,
  );
}

function within<T>(promise: Promise<T>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise.then(() => true),
    new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), Math.max(0, ms));
    }),
  ]).finally(() => clearTimeout(timer));
}

export async function createServer(
  config: ServerConfig,
  options: CreateServerOptions = {},
): Promise<MvpServer> {
  const logger = createLogger({ level: config.logLevel, destination: options.logDestination });
  const metrics = createMetrics();
  const infra = await createInfrastructure(config, logger, metrics, options.clock);
  const settings = apiSettingsFrom(config);

  let stopping = false;
  let baseUrl = '';
  const isStopping = () => stopping;
  const handle = createHttpHandler({
    config,
    infra,
    settings,
    metrics,
    logger,
    baseUrl: () => baseUrl,
    isStopping,
  });
  // Answers still to be written. Once draining, each must end its connection: kept alive, the
  // client's pool would send the next request on it, and the next, holding the drain open until
  // the deadline (server.close() only ends connections that are idle at that moment).
  const unanswered = new Set<ServerResponse>();
  const timeouts = { ...HTTP_TIMEOUTS, ...options.httpTimeouts };
  const serverOptions = {
    headersTimeout: timeouts.headersMs,
    requestTimeout: timeouts.requestMs,
    connectionsCheckingInterval: timeouts.checkEveryMs,
  };
  const httpServer = createHttpServer(serverOptions, (req, res) => {
    limitBodyIdle(req, res, timeouts.bodyIdleMs);
    if (stopping) res.setHeader('connection', 'close');
    else {
      unanswered.add(res);
      res.once('close', () => unanswered.delete(res));
    }
    // handle() never rejects: it answers every failure itself.
    void handle(req, res);
  });
  const presence = createPresenceTracker(infra.ports, {
    instanceId: randomUUID(),
    ttlMs: config.presence.ttlSeconds * 1000,
    throttleMs: config.presence.throttleMs,
  });
  const ws = attachWebSockets(httpServer, {
    config,
    infra,
    settings,
    metrics,
    logger,
    presence,
    isStopping,
  });

  try {
    await new Promise<void>((resolve, reject) => {
      httpServer.once('error', reject);
      httpServer.listen(config.port, config.host, () => {
        httpServer.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    await infra.close();
    throw err;
  }

  const port = (httpServer.address() as AddressInfo).port;
  const url = `http://${hostForUrl(config.host)}:${port}`;
  baseUrl = config.publicUrl?.replace(/\/$/, '') ?? url;

  // Revocations from any instance: forget the cached answer and close the session's sockets.
  const stopRevocations = await infra.ports.bus.subscribe(SESSION_REVOKED_CHANNEL, (message) => {
    const { sessionIds } = message as SessionRevokedMessage;
    if (!Array.isArray(sessionIds)) return;
    for (const id of sessionIds) infra.ports.sessions.forget(id);
    ws.closeSessions(sessionIds);
  });

  // A block or a conversation setting changed on any instance: decide its sends afresh.
  const stopPostingChanges = await infra.ports.bus.subscribe(POSTING_CHANGED_CHANNEL, (message) => {
    const { conversationIds } = message as PostingChangedMessage;
    if (Array.isArray(conversationIds)) infra.ports.posting.forget(conversationIds);
  });

  // Background loops, each job under a KeyValue lock so that one instance runs it. Shutdown stops
  // the runs in progress (between batches) and waits for them before closing the database and
  // Redis: closed under a run, they would fail it and leave its lock held to the end of its lease
  // (a minute in which no instance ends ringing calls, after every deploy).
  const stopJobs = new AbortController();
  const runs = new Set<Promise<void>>();
  const runEvery = (ms: number, job: string, run: (stop: AbortSignal) => Promise<unknown>) => {
    let running = false;
    const timer = setInterval(() => {
      // A run outlasting its interval holds the lock: another would only be refused, and with
      // the store slow they would pile up.
      if (running) return;
      running = true;
      const current = run(stopJobs.signal).then(
        () => undefined,
        (err: unknown) => logger.error({ err, job }, 'job failed'),
      );
      runs.add(current);
      void current.finally(() => {
        runs.delete(current);
        running = false;
      });
    }, ms);
    timer.unref();
    return timer;
  };
  const jobs = [
    // Re-encryption, inactive accounts, stream retention, ended sessions.
    runEvery(config.auth.jobsIntervalSeconds * 1000, 'jobs', (stop) =>
      runJobsOnce(infra.ports, settings, undefined, stop),
    ),
    // Calls ringing too long become missed, calls whose heartbeats stopped end.
    runEvery(Math.min(5_000, config.calls.ringTimeoutMs / 4), 'expireCalls', (stop) =>
      runCallTimeoutsOnce(infra.ports, settings, stop),
    ),
    // Disappearing messages go about when they expire, not a jobs interval later.
    runEvery(config.messageExpiryCheckMs, 'purgeExpiredMessages', (stop) =>
      runMessageExpiryOnce(infra.ports, settings, stop),
    ),
  ];

  // Keeps this instance's users online in the shared store and expires those of dead instances.
  const presenceTicks = setInterval(
    () => {
      presence.tick().catch((err: unknown) => logger.warn({ err }, 'presence refresh failed'));
    },
    (config.presence.ttlSeconds * 1000) / 3,
  );
  presenceTicks.unref();

  let shutdownPromise: Promise<void> | undefined;
  const shutdown = (): Promise<void> => {
    shutdownPromise ??= (async () => {
      stopping = true;
      for (const timer of jobs) clearInterval(timer);
      clearInterval(presenceTicks);
      stopJobs.abort();
      const jobsDone = Promise.all(runs);
      // Not awaited: an unreachable Redis must not hold up the bounded shutdown.
      stopRevocations().catch(() => undefined);
      stopPostingChanges().catch(() => undefined);
      const deadline = Date.now() + config.shutdownTimeoutMs;
      const left = () => deadline - Date.now();
      logger.info({ openSockets: ws.wss.clients.size }, 'shutting down');
      if (runs.size) logger.info({ jobs: runs.size }, 'waiting for background jobs in progress');
      for (const res of unanswered) if (!res.headersSent) res.setHeader('connection', 'close');
      unanswered.clear();
      const httpClosed = new Promise<void>((resolve) => httpServer.close(() => resolve()));
      httpServer.closeIdleConnections();

      // Clients that follow tRPC's reconnect notification leave on their own; give them a
      // short grace, then close the rest with 1012 (service restart) so they retry elsewhere.
      ws.broadcastReconnectNotification();
      await within(allClosed(ws.wss.clients), Math.min(1_000, left() / 4));
      for (const client of ws.wss.clients) client.close(1012, 'server restarting');
      if (!(await within(allClosed(ws.wss.clients), Math.min(2_000, left() / 2)))) {
        for (const client of ws.wss.clients) client.terminate();
      }
      ws.wss.close();
      // Every socket is closed: its users leave this instance (offline unless held elsewhere).
      await within(presence.stop(), Math.max(0, left()));

      if (!(await within(httpClosed, left()))) {
        logger.warn('shutdown bound reached: closing remaining connections');
        httpServer.closeAllConnections();
      }
      if (!(await within(jobsDone, left()))) {
        logger.warn('shutdown bound reached: closing the backends under background jobs');
      }
      await infra.close();
      logger.info('shutdown complete');
    })();
    return shutdownPromise;
  };

  return {
    url,
    trpcUrl: `${url}${TRPC_PATH}`,
    wsUrl: `${url.replace(/^http/, 'ws')}${TRPC_PATH}`,
    docsUrl: `${url}/docs`,
    port,
    config,
    settings,
    logger,
    infra,
    shutdown,
  };
}
