import type { ApiSettings, AuthSettings } from '@mvp/api';
import type { S3BlobStoreOptions } from './adapters/blob/s3BlobStore';
import { EnvError, parseEnv, type Env } from './env';

export type AuthConfig = {
  jwt: {
    /** Ed25519 private JWK (JSON) that signs; generated into dataDir when unset. */
    signingKey: string | undefined;
    /** JSON array of extra public JWKs still accepted (rotation). */
    verifyKeys: string | undefined;
    issuer: string;
    audience: string;
    accessTtlSeconds: number;
  };
  refresh: { absoluteDays: number; idleDays: number };
  sessionCacheMs: number;
  /** Field-encryption keys, newest first; generated into dataDir when unset. */
  dataKeys: { id: string; key: string }[] | undefined;
  blindIndexKey: string | undefined;
  argon2: { memoryCost: number; timeCost: number; parallelism: number };
  otp: {
    sender: 'log' | 'webhook';
    webhookUrl: string | undefined;
    webhookSecret: string | undefined;
    ttlSeconds: number;
    resendSeconds: number;
    maxAttempts: number;
  };
  limits: AuthSettings['limits'];
  loginBackoff: { after: number; maxSeconds: number };
  deleteInactiveAfterDays: number;
  jobsIntervalSeconds: number;
};

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
  /** Proxies in front of the server whose X-Forwarded-For entries are believed (0: none). */
  trustProxy: number;
  wsMaxPayloadBytes: number;
  httpMaxBodyBytes: number;
  wsPingMs: number;
  wsPongWaitMs: number;
  ipRateLimit: { points: number; durationSeconds: number };
  /** Per client address, for the HTTP routes outside tRPC (which spend no procedure budget). */
  httpLimits: {
    /** Counted per instance: each one answers its own probes. */
    readyzIp: { points: number; durationSeconds: number };
    /** `GET`/`HEAD /avatars/…`, across instances. */
    avatarGetIp: { points: number; durationSeconds: number };
    /** Counted per instance, as `/readyz`: the same probes reach every instance. */
    /** `/openapi.json`, `/.well-known/jwks.json` and `/docs…` together, across instances. */
    publicDocsIp: { points: number; durationSeconds: number };
  };
  shutdownTimeoutMs: number;
  /** How much nicer the threads beside the main one run (see backgroundThreads.ts); 0: as is. */
  backgroundThreadNice: number;
  logLevel: Env['MVP_LOG_LEVEL'];
  /** Unset: `/metrics` is open in development and absent (404) in production. */
  metricsToken: string | undefined;
  docsEnabled: boolean;
  dataDir: string;
  auth: AuthConfig;
  /** User lookups per account (a Signal-like budget: no way to list everyone). */
  searchLimit: { points: number; durationSeconds: number };
  /** New contact requests per account. */
  requestLimit: { points: number; durationSeconds: number };
  avatarMaxBytes: number;
  /** Where blobs go: S3 when set, else `<dataDir>/blobs`. */
  s3: S3BlobStoreOptions | undefined;
  messaging: ApiSettings['messaging'];
  /** How often expired disappearing messages are looked for (one instance at a time). */
  messageExpiryCheckMs: number;
  keys: ApiSettings['keys'];
  calls: ApiSettings['calls'];
  presence: {
    /** An instance's connection counts expire this long after its last refresh. */
    ttlSeconds: number;
    /** At most one presence change per user per this many ms reaches other users. */
    throttleMs: number;
  };
};

/**
 * Secrets that were once published as defaults (docker-compose.yml, .env.example). Whoever knows
 * coturn's secret mints TURN credentials and relays through it, so production refuses them.
 */
const PUBLISHED_TURN_SECRETS = new Set(['change-me-turn-secret']);

/**
 * TURN needs the secret coturn shares, or clients would get credentials that never work; and a
 * secret without URLs is almost always a forgotten variable: calls would quietly go without TURN
 * (and fail behind symmetric NAT) while the operator believes it is on.
 */
function callsFromEnv(env: Env): ApiSettings['calls'] {
  if (
    env.NODE_ENV === 'production' &&
    env.MVP_TURN_SECRET &&
    PUBLISHED_TURN_SECRETS.has(env.MVP_TURN_SECRET)
  ) {
    // An EnvError: main.ts prints it as the one line a bad variable gets.
    throw new EnvError(
      'invalid environment: MVP_TURN_SECRET: the published placeholder is refused in production ' +
        '(anyone could mint TURN credentials); set a random one, e.g. openssl rand -hex 32',
    );
  }
  if (env.MVP_TURN_URLS.length > 0 && !env.MVP_TURN_SECRET) {
    throw new Error('MVP_TURN_URLS needs MVP_TURN_SECRET (coturn static-auth-secret)');
  }
  if (env.MVP_TURN_SECRET && env.MVP_TURN_URLS.length === 0) {
    throw new Error('MVP_TURN_SECRET needs MVP_TURN_URLS (the turn: and turns: URLs of coturn)');
  }
  const isStun = (url: string) => /^stuns?:/.test(url);
  if (env.MVP_TURN_URLS.some(isStun)) {
    throw new Error('MVP_TURN_URLS takes turn: and turns: URLs; put stun: ones in MVP_STUN_URLS');
  }
  if (!env.MVP_STUN_URLS.every(isStun)) {
    throw new Error('MVP_STUN_URLS takes stun: and stuns: URLs; put turn: ones in MVP_TURN_URLS');
  }
  return {
    stunUrls: env.MVP_STUN_URLS,
    turnUrls: env.MVP_TURN_URLS,
    turnSecret: env.MVP_TURN_SECRET,
    turnTtlSeconds: env.MVP_TURN_TTL_SECONDS,
    ringTimeoutMs: env.MVP_CALL_RING_TIMEOUT_SECONDS * 1000,
    heartbeatTimeoutMs: env.MVP_CALL_HEARTBEAT_TIMEOUT_SECONDS * 1000,
    maxPayloadBytes: env.MVP_CALL_PAYLOAD_MAX_BYTES,
    startLimit: env.MVP_LIMIT_CALL_START_ACCOUNT,
    signalLimit: env.MVP_LIMIT_CALL_SIGNAL,
    iceLimit: env.MVP_LIMIT_CALL_ICE_ACCOUNT,
  };
}

function s3FromEnv(env: Env): S3BlobStoreOptions | undefined {
  if (!env.MVP_S3_BUCKET) return undefined;
  if (!env.MVP_S3_ACCESS_KEY_ID || !env.MVP_S3_SECRET_ACCESS_KEY) {
    throw new Error('MVP_S3_BUCKET needs MVP_S3_ACCESS_KEY_ID and MVP_S3_SECRET_ACCESS_KEY');
  }
  return {
    ...(env.MVP_S3_ENDPOINT ? { endpoint: env.MVP_S3_ENDPOINT } : {}),
    region: env.MVP_S3_REGION,
    bucket: env.MVP_S3_BUCKET,
    accessKeyId: env.MVP_S3_ACCESS_KEY_ID,
    secretAccessKey: env.MVP_S3_SECRET_ACCESS_KEY,
    forcePathStyle: env.MVP_S3_FORCE_PATH_STYLE,
  };
}

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
    httpLimits: {
      readyzIp: env.MVP_LIMIT_READYZ_IP,
      avatarGetIp: env.MVP_LIMIT_AVATAR_GET_IP,
      publicDocsIp: env.MVP_LIMIT_PUBLIC_DOCS_IP,
    },
    shutdownTimeoutMs: env.MVP_SHUTDOWN_TIMEOUT_MS,
    backgroundThreadNice: env.MVP_BACKGROUND_THREAD_NICE,
    logLevel: env.MVP_LOG_LEVEL,
    metricsToken: env.MVP_METRICS_TOKEN,
    docsEnabled: env.MVP_DOCS_ENABLED,
    dataDir: env.MVP_DATA_DIR,
    searchLimit: env.MVP_LIMIT_SEARCH_ACCOUNT,
    requestLimit: env.MVP_LIMIT_CONTACT_REQUEST_ACCOUNT,
    avatarMaxBytes: env.MVP_AVATAR_MAX_BYTES,
    s3: s3FromEnv(env),
    calls: callsFromEnv(env),
    keys: {
      prekeyCap: env.MVP_PREKEY_CAP,
      lowThreshold: env.MVP_PREKEY_LOW_THRESHOLD,
      claimLimit: env.MVP_LIMIT_KEY_CLAIM_ACCOUNT,
      claimPairLimit: env.MVP_LIMIT_KEY_CLAIM_PAIR,
      claimUserLimit: env.MVP_LIMIT_KEY_CLAIM_USER,
    },
    messaging: {
      maxCiphertextBytes: env.MVP_MESSAGE_MAX_BYTES,
      groupMemberCap: env.MVP_GROUP_MEMBER_CAP,
      deviceQueueCap: env.MVP_DEVICE_QUEUE_CAP,
      deviceQueueSenderCap: env.MVP_DEVICE_QUEUE_SENDER_CAP,
      retentionDays: env.MVP_EVENT_RETENTION_DAYS,
      streamSessionCheckMs: env.MVP_STREAM_SESSION_CHECK_MS,
      streamBufferBytes: env.MVP_STREAM_BUFFER_BYTES,
      sendLimit: env.MVP_LIMIT_SEND_ACCOUNT,
    },
    messageExpiryCheckMs: env.MVP_MESSAGE_EXPIRY_CHECK_MS,
    presence: {
      ttlSeconds: env.MVP_PRESENCE_TTL_SECONDS,
      throttleMs: env.MVP_PRESENCE_THROTTLE_MS,
    },
    auth: {
      jwt: {
        signingKey: env.MVP_JWT_SIGNING_KEY,
        verifyKeys: env.MVP_JWT_VERIFY_KEYS,
        issuer: env.MVP_JWT_ISSUER,
        audience: env.MVP_JWT_AUDIENCE,
        accessTtlSeconds: env.MVP_ACCESS_TOKEN_TTL_SECONDS,
      },
      refresh: { absoluteDays: env.MVP_REFRESH_ABSOLUTE_DAYS, idleDays: env.MVP_REFRESH_IDLE_DAYS },
      sessionCacheMs: env.MVP_SESSION_CACHE_MS,
      dataKeys: env.MVP_DATA_KEYS,
      blindIndexKey: env.MVP_BLIND_INDEX_KEY,
      argon2: {
        memoryCost: env.MVP_ARGON2_MEMORY_KIB,
        timeCost: env.MVP_ARGON2_TIME_COST,
        parallelism: env.MVP_ARGON2_PARALLELISM,
      },
      otp: {
        sender: env.MVP_OTP_SENDER,
        webhookUrl: env.MVP_OTP_WEBHOOK_URL,
        webhookSecret: env.MVP_OTP_WEBHOOK_SECRET,
        ttlSeconds: env.MVP_OTP_TTL_SECONDS,
        resendSeconds: env.MVP_OTP_RESEND_SECONDS,
        maxAttempts: env.MVP_OTP_MAX_ATTEMPTS,
      },
      limits: {
        registerIp: env.MVP_LIMIT_REGISTER_IP,
        loginIp: env.MVP_LIMIT_LOGIN_IP,
        loginAccount: env.MVP_LIMIT_LOGIN_ACCOUNT,
        loginDevice: env.MVP_LIMIT_LOGIN_DEVICE,
        otpSendIp: env.MVP_LIMIT_OTP_SEND_IP,
        otpSendPhone: env.MVP_LIMIT_OTP_SEND_PHONE,
        otpSendAll: env.MVP_LIMIT_OTP_SEND_ALL,
        otpVerifyIp: env.MVP_LIMIT_OTP_VERIFY_IP,
        refreshIp: env.MVP_LIMIT_REFRESH_IP,
        refreshAccount: env.MVP_LIMIT_REFRESH_ACCOUNT,
      },
      loginBackoff: {
        after: env.MVP_LOGIN_BACKOFF_AFTER,
        maxSeconds: env.MVP_LOGIN_BACKOFF_MAX_SECONDS,
      },
      deleteInactiveAfterDays: env.MVP_DELETE_INACTIVE_AFTER_DAYS,
      jobsIntervalSeconds: env.MVP_JOBS_INTERVAL_SECONDS,
    },
  };
}

/** The defaults every variable has, as a config; tests override what they need. */
export function defaultConfig(overrides: Partial<ServerConfig> = {}): ServerConfig {
  return { ...configFromEnv(parseEnv({})), ...overrides };
}
