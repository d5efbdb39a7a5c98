import { isIPv4, isIPv6 } from 'node:net';
import { createEnv } from '@t3-oss/env-core';
import { z } from 'zod';

/**
 * The only reader of process.env. Every variable is listed and validated here; .env.example,
 * the README and docker-compose.yml use exactly these names (a test checks compose).
 */
const bool = z.enum(['true', 'false', '1', '0']).transform((v) => v === 'true' || v === '1');
const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);
/** How many proxies stand in front: `false` (none), `true` (one) or their number. */
const proxyHops = z
  .string()
  .regex(/^(true|false|\d{1,2})$/, 'expected true, false or the number of proxies in front')
  .transform((v) => (v === 'true' ? 1 : v === 'false' ? 0 : Number(v)));
/** `points/seconds`, e.g. `10/3600`: ten per hour. */
const limit = z
  .string()
  .regex(/^\d{1,7}\/\d{1,6}$/, 'expected points/seconds, e.g. 10/3600')
  .transform((s) => {
    const [points, durationSeconds] = s.split('/').map(Number) as [number, number];
    return { points, durationSeconds };
  })
  .refine((l) => l.points > 0 && l.durationSeconds > 0, 'points and seconds must be positive');
const base64Key = z
  .string()
  .refine((s) => Buffer.from(s, 'base64').length === 32, 'expected 32 bytes, base64');
const keyList = z
  .string()
  .transform((s) =>
    s
      .split(',')
      .map((k) => k.trim())
      .filter(Boolean),
  )
  .pipe(
    z
      .array(
        z
          .string()
          .regex(/^[A-Za-z0-9_-]{1,16}:[A-Za-z0-9+/=]+$/, 'expected id:base64 pairs')
          .refine(
            (p) => Buffer.from(p.split(':')[1]!, 'base64').length === 32,
            'keys are 32 bytes',
          ),
      )
      .min(1),
  )
  .transform((pairs) => pairs.map((p) => ({ id: p.split(':')[0]!, key: p.split(':')[1]! })));
const originList = z
  .string()
  .transform((s) =>
    s
      .split(',')
      .map((o) => o.trim())
      .filter(Boolean),
  )
  .pipe(z.array(z.url().transform((u) => new URL(u).origin)));

/** RFC 1123 host names, label by label (letters, digits, inner hyphens; 63 characters each). */
const DNS_NAME = /^(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*$/;

/** An IPv6 address in brackets, an IPv4 address, or a DNS name. */
function isIceHost(host: string): boolean {
  // No zone id (`%eth0`): it names an interface of this machine, not of the browser's.
  if (host.startsWith('[')) return isIPv6(host.slice(1, -1)) && !host.includes('%');
  if (isIPv4(host)) return true;
  // A last label of digits only is a malformed IPv4 address (999.1.1.1), as URL parsers read it.
  return host.length <= 253 && DNS_NAME.test(host) && !/(^|\.)\d+$/.test(host);
}

/**
 * What is wrong with one ICE server URL, or undefined. RFC 7064 (`stun:`, `stuns:`) and RFC 7065
 * (`turn:`, `turns:`): scheme, host, optional port, and `?transport=udp|tcp` on TURN only. Held
 * strictly, because RTCPeerConnection throws on a URL it cannot parse: a loose check would let
 * the server start and then fail every call. No parser of these is a dependency (WHATWG's URL
 * keeps `stun:host:port` opaque), hence the shape here and Node's own IP address checks.
 */
function iceUrlProblem(url: string): string | undefined {
  const shape = /^(stuns?|turns?):(\[[^\]]*\]|[^:?[\]]+)(?::([^?]*))?(\?.*)?$/.exec(url);
  if (!shape)
    return 'expected stun:host[:port], stuns:…, turn:host[:port][?transport=udp|tcp] or turns:…';
  const [, scheme = '', host = '', port, query] = shape;
  if (!isIceHost(host)) return 'the host must be a DNS name, an IPv4 address or an [IPv6] address';
  const portOk = port === undefined || (/^\d{1,5}$/.test(port) && +port >= 1 && +port <= 65_535);
  if (!portOk) return 'the port must be a number from 1 to 65535';
  if (query === undefined) return undefined;
  if (scheme.startsWith('stun')) return 'stun: and stuns: URLs take no ?transport';
  if (query !== '?transport=udp' && query !== '?transport=tcp')
    return 'the only query is ?transport=udp or ?transport=tcp';
  return undefined;
}

/** ICE server URLs, comma separated; a bad one is named in the start-up message. */
const iceUrlList = z
  .string()
  .transform((s) =>
    s
      .split(',')
      .map((u) => u.trim())
      .filter(Boolean),
  )
  .pipe(
    z.array(
      z.string().superRefine((url, ctx) => {
        const problem = iceUrlProblem(url);
        // The URL is echoed (clients get these URLs anyway) unless it carries a user part:
        // that would be a credential, and TURN's come from MVP_TURN_SECRET instead.
        const shown = url.includes('@') ? 'a URL with user@' : JSON.stringify(url);
        if (problem) ctx.addIssue({ code: 'custom', message: `${shown}: ${problem}` });
      }),
    ),
  );

export const envSchema = {
  NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
  MVP_HOST: z.string().min(1).default('127.0.0.1'),
  MVP_PORT: int(0, 65_535).default(3000),
  MVP_PUBLIC_URL: z.url().optional(),
  DATABASE_URL: z
    .string()
    .regex(/^(mysql:\/\/|sqlite:)/, 'expected mysql://… or sqlite:<path>')
    .default('sqlite:./data/mvp.db'),
  REDIS_URL: z
    .string()
    .regex(/^rediss?:\/\//, 'expected redis://…')
    .optional(),
  MVP_REDIS_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9:_-]{1,64}$/)
    .default('mvp:'),
  MVP_MIGRATE_ON_START: bool.default(true),
  MVP_ALLOWED_ORIGINS: originList.default([]),
  MVP_TRUST_PROXY: proxyHops.default(0),
  MVP_WS_MAX_PAYLOAD_BYTES: int(1024, 16 * 1024 * 1024).default(64 * 1024),
  MVP_HTTP_MAX_BODY_BYTES: int(1024, 64 * 1024 * 1024).default(1024 * 1024),
  MVP_WS_PING_MS: int(1_000, 600_000).default(30_000),
  MVP_WS_PONG_WAIT_MS: int(1_000, 600_000).default(10_000),
  MVP_RATE_LIMIT_IP_POINTS: int(1, 1_000_000).default(600),
  MVP_RATE_LIMIT_IP_WINDOW_SECONDS: int(1, 86_400).default(60),
  // Routes outside tRPC, whose procedure budget above they do not spend.
  MVP_LIMIT_READYZ_IP: limit.default({ points: 120, durationSeconds: 60 }),
  MVP_LIMIT_AVATAR_GET_IP: limit.default({ points: 600, durationSeconds: 60 }),
  MVP_LIMIT_PUBLIC_DOCS_IP: limit.default({ points: 300, durationSeconds: 60 }),
  MVP_SHUTDOWN_TIMEOUT_MS: int(100, 600_000).default(10_000),
  // Linux: the threads beside the one serving requests (V8's workers, libuv's pool) run this much
  // nicer than it (0: as they are). See backgroundThreads.ts.
  MVP_BACKGROUND_THREAD_NICE: int(0, 19).default(10),
  MVP_LOG_LEVEL: z
    .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])
    .default('info'),
  MVP_METRICS_TOKEN: z.string().min(16).optional(),
  MVP_DOCS_ENABLED: bool.default(true),
  // Where generated keys (and later blobs) live on the embedded setup.
  MVP_DATA_DIR: z.string().min(1).default('./data'),
  // Accounts and tokens (issue 3).
  MVP_JWT_SIGNING_KEY: z.string().min(10).optional(),
  MVP_JWT_VERIFY_KEYS: z.string().min(2).optional(),
  MVP_JWT_ISSUER: z.string().min(1).default('mvp'),
  MVP_JWT_AUDIENCE: z.string().min(1).default('mvp-api'),
  MVP_ACCESS_TOKEN_TTL_SECONDS: int(60, 3600).default(900),
  MVP_REFRESH_ABSOLUTE_DAYS: int(1, 365).default(30),
  MVP_REFRESH_IDLE_DAYS: int(1, 365).default(14),
  MVP_SESSION_CACHE_MS: int(0, 10_000).default(2_000),
  MVP_DATA_KEYS: keyList.optional(),
  MVP_BLIND_INDEX_KEY: base64Key.optional(),
  MVP_ARGON2_MEMORY_KIB: int(19_456, 4_194_304).default(19_456),
  MVP_ARGON2_TIME_COST: int(2, 100).default(2),
  MVP_ARGON2_PARALLELISM: int(1, 64).default(1),
  MVP_OTP_SENDER: z.enum(['log', 'webhook']).default('log'),
  MVP_OTP_WEBHOOK_URL: z.url().optional(),
  MVP_OTP_WEBHOOK_SECRET: z.string().min(16).optional(),
  MVP_OTP_TTL_SECONDS: int(60, 3600).default(300),
  MVP_OTP_RESEND_SECONDS: int(0, 3600).default(30),
  MVP_OTP_MAX_ATTEMPTS: int(1, 20).default(5),
  MVP_LIMIT_REGISTER_IP: limit.default({ points: 10, durationSeconds: 3600 }),
  MVP_LIMIT_LOGIN_IP: limit.default({ points: 30, durationSeconds: 300 }),
  MVP_LIMIT_LOGIN_ACCOUNT: limit.default({ points: 50, durationSeconds: 3600 }),
  MVP_LIMIT_LOGIN_DEVICE: limit.default({ points: 10, durationSeconds: 3600 }),
  MVP_LIMIT_OTP_SEND_IP: limit.default({ points: 10, durationSeconds: 3600 }),
  MVP_LIMIT_OTP_SEND_PHONE: limit.default({ points: 5, durationSeconds: 3600 }),
  MVP_LIMIT_OTP_SEND_ALL: limit.default({ points: 1000, durationSeconds: 3600 }),
  MVP_LIMIT_OTP_VERIFY_IP: limit.default({ points: 30, durationSeconds: 300 }),
  MVP_LIMIT_REFRESH_IP: limit.default({ points: 60, durationSeconds: 60 }),
  MVP_LIMIT_REFRESH_ACCOUNT: limit.default({ points: 30, durationSeconds: 60 }),
  MVP_LIMIT_SEARCH_ACCOUNT: limit.default({ points: 100, durationSeconds: 900 }),
  MVP_LIMIT_CONTACT_REQUEST_ACCOUNT: limit.default({ points: 50, durationSeconds: 86_400 }),
  MVP_LOGIN_BACKOFF_AFTER: int(1, 100).default(5),
  MVP_LOGIN_BACKOFF_MAX_SECONDS: int(1, 86_400).default(900),
  MVP_DELETE_INACTIVE_AFTER_DAYS: int(0, 36_500).default(0),
  MVP_JOBS_INTERVAL_SECONDS: int(1, 86_400).default(60),
  // Disappearing messages are purged (and the removal sent) this soon after they expire.
  MVP_MESSAGE_EXPIRY_CHECK_MS: int(100, 60_000).default(1000),
  // People (issue 4): avatars in a local folder under MVP_DATA_DIR, or S3 when a bucket is set.
  MVP_AVATAR_MAX_BYTES: int(1024, 20 * 1024 * 1024).default(2 * 1024 * 1024),
  MVP_S3_BUCKET: z.string().min(3).optional(),
  MVP_S3_ENDPOINT: z.url().optional(),
  MVP_S3_REGION: z.string().min(1).default('us-east-1'),
  MVP_S3_ACCESS_KEY_ID: z.string().min(1).optional(),
  MVP_S3_SECRET_ACCESS_KEY: z.string().min(1).optional(),
  MVP_S3_FORCE_PATH_STYLE: bool.default(false),
  // Presence: an instance's connection counts expire this long after its last refresh.
  MVP_PRESENCE_TTL_SECONDS: int(3, 600).default(30),
  MVP_PRESENCE_THROTTLE_MS: int(0, 60_000).default(3_000),
  // Messaging (issue 5).
  MVP_MESSAGE_MAX_BYTES: int(1024, 1024 * 1024).default(64 * 1024),
  MVP_GROUP_MEMBER_CAP: int(2, 100_000).default(1000),
  // At most what a cold start's snapshot hands a device at once (sync.service.ts): a queue longer
  // than that would leave the rest behind the snapshot's cursor, never delivered.
  MVP_DEVICE_QUEUE_CAP: int(10, 5000).default(5000),
  MVP_DEVICE_QUEUE_SENDER_CAP: int(1, 5000).default(500),
  // A revocation closes sockets at once over the bus; this bounds how long a lost bus message
  // (Redis pub/sub is at most once) or a session's expiry leaves a stream open.
  MVP_STREAM_SESSION_CHECK_MS: int(100, 3_600_000).default(60_000),
  // A stream waits for a slow reader past this many unsent bytes on its socket (above the
  // socket's own 16 KiB mark, so the wait ends on its 'drain').
  MVP_STREAM_BUFFER_BYTES: int(64 * 1024, 64 * 1024 * 1024).default(1024 * 1024),
  MVP_EVENT_RETENTION_DAYS: int(1, 3650).default(30),
  MVP_LIMIT_SEND_ACCOUNT: limit.default({ points: 600, durationSeconds: 60 }),
  // Keys (issue 6).
  MVP_PREKEY_CAP: int(100, 100_000).default(500),
  MVP_PREKEY_LOW_THRESHOLD: int(1, 1000).default(10),
  // Users' bundles per account: a burst that covers the first send to two full groups (1 000
  // members each, one point per member), at the same average rate as 200 a minute. A window of
  // a minute made that first send wait five of them.
  MVP_LIMIT_KEY_CLAIM_ACCOUNT: limit.default({ points: 2000, durationSeconds: 600 }),
  MVP_LIMIT_KEY_CLAIM_PAIR: limit.default({ points: 10, durationSeconds: 3600 }),
  MVP_LIMIT_KEY_CLAIM_USER: limit.default({ points: 100, durationSeconds: 3600 }),
  // Calls (issue 7).
  MVP_STUN_URLS: iceUrlList.default([]),
  MVP_TURN_URLS: iceUrlList.default([]),
  MVP_TURN_SECRET: z.string().min(16, 'at least 16 characters').optional(),
  MVP_TURN_TTL_SECONDS: int(60, 86_400).default(3600),
  MVP_CALL_RING_TIMEOUT_SECONDS: int(5, 600).default(60),
  // Clients beat every 30 s (the SDK's heartbeatMs): under two beats, every answered call would
  // end as soon as one beat came a little late, or at once.
  MVP_CALL_HEARTBEAT_TIMEOUT_SECONDS: int(60, 3600).default(75),
  MVP_CALL_PAYLOAD_MAX_BYTES: int(1024, 1024 * 1024).default(32 * 1024),
  MVP_LIMIT_CALL_START_ACCOUNT: limit.default({ points: 30, durationSeconds: 60 }),
  MVP_LIMIT_CALL_SIGNAL: limit.default({ points: 300, durationSeconds: 60 }),
  MVP_LIMIT_CALL_ICE_ACCOUNT: limit.default({ points: 60, durationSeconds: 60 }),
};

export const ENV_VARIABLES = Object.keys(envSchema);

export type Env = ReturnType<typeof parseEnv>;

export class EnvError extends Error {
  override name = 'EnvError';
}

export function parseEnv(source: Record<string, string | undefined> = process.env) {
  return createEnv({
    server: envSchema,
    runtimeEnv: source,
    emptyStringAsUndefined: true,
    isServer: true,
    onValidationError: (issues) => {
      // One line that names the variable and never echoes its value (it may be a secret).
      const first = issues[0];
      const head = first?.path?.[0];
      const name = typeof head === 'object' ? head.key : (head ?? '?');
      const more = issues.length > 1 ? ` (and ${issues.length - 1} more)` : '';
      throw new EnvError(
        `invalid environment: ${String(name)}: ${first?.message ?? 'invalid'}${more}`,
      );
    },
  });
}
