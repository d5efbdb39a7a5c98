import { parseEnv, type Env } from './env';

export type ServerConfig = {
  nodeEnv: Env['NODE_ENV'];
  host: string;
  port: number;
  publicUrl: string | undefined;
  databaseUrl: string;
  redisUrl: string | undefined;
  /** Namespaces every Redis key and channel, so deployments (or test runs) can share a Redis. */
  redisPrefix: string;
  migrateOnStart: boolean;
  allowedOrigins: string[];
  trustProxy: boolean;
  wsMaxPayloadBytes: number;
  httpMaxBodyBytes: number;
  wsPingMs: number;
  wsPongWaitMs: number;
  ipRateLimit: { points: number; durationSeconds: number };
  shutdownTimeoutMs: number;
  logLevel: Env['MVP_LOG_LEVEL'];
  metricsToken: string | undefined;
  docsEnabled: boolean;
};

export function configFromEnv(env: Env): ServerConfig {
  return {
    nodeEnv: env.NODE_ENV,
    host: env.MVP_HOST,
    port: env.MVP_PORT,
    publicUrl: env.MVP_PUBLIC_URL,
    databaseUrl: env.DATABASE_URL,
    redisUrl: env.REDIS_URL,
    redisPrefix: env.MVP_REDIS_PREFIX,
    migrateOnStart: env.MVP_MIGRATE_ON_START,
    allowedOrigins: env.MVP_ALLOWED_ORIGINS,
    trustProxy: env.MVP_TRUST_PROXY,
    wsMaxPayloadBytes: env.MVP_WS_MAX_PAYLOAD_BYTES,
    httpMaxBodyBytes: env.MVP_HTTP_MAX_BODY_BYTES,
    wsPingMs: env.MVP_WS_PING_MS,
    wsPongWaitMs: env.MVP_WS_PONG_WAIT_MS,
    ipRateLimit: {
      points: env.MVP_RATE_LIMIT_IP_POINTS,
      durationSeconds: env.MVP_RATE_LIMIT_IP_WINDOW_SECONDS,
    },
    shutdownTimeoutMs: env.MVP_SHUTDOWN_TIMEOUT_MS,
    logLevel: env.MVP_LOG_LEVEL,
    metricsToken: env.MVP_METRICS_TOKEN,
    docsEnabled: env.MVP_DOCS_ENABLED,
  };
}

/** The defaults every variable has, as a config; tests override what they need. */
export function defaultConfig(overrides: Partial<ServerConfig> = {}): ServerConfig {
  return { ...configFromEnv(parseEnv({})), ...overrides };
}
