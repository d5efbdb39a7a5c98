import path from 'node:path';
import { Redis } from 'ioredis';
import { sql } from 'kysely';
import { createDb, dialectOf, migrateToLatest } from '@mvp/db';
import {
  authenticatorFor,
  createFieldCipher,
  createPasswordHasher,
  createPostingCache,
  createSessionGuard,
  createTokenSigner,
  POSTING_CACHE_MS,
  systemClock,
  type Clock,
  type Logger,
  type OtpSender,
  type Ports,
} from '@mvp/api';
import type { ServerConfig } from '../config';
import type { ServerMetrics } from '../metrics';
import { createLocalBlobStore } from './blob/localBlobStore';
import { createS3BlobStore } from './blob/s3BlobStore';
import { createMemoryEventBus } from './memory/memoryEventBus';
import { createMemoryKeyValue } from './memory/memoryKeyValue';
import { createMemoryPresenceStore } from './memory/memoryPresenceStore';
import {
  checkKeyFingerprint,
  keyFingerprintOf,
  KeyMismatchError,
  refuseForeignKeys,
} from '../keyFingerprint';
import { loadSecrets } from '../secrets';
import { createLogOtpSender } from './otp/logOtpSender';
import { createWebhookOtpSender } from './otp/webhookOtpSender';
import { createMemoryRateLimiter, createRedisRateLimiter } from './rateLimiter';
import { createRedisEventBus } from './redis/redisEventBus';
import { createRedisKeyValue } from './redis/redisKeyValue';
import { createRedisPresenceStore } from './redis/redisPresenceStore';

export type Infrastructure = {
  ports: Ports;
  /** Answers whether every backing service responds; used by /readyz. */
  checkReady(timeoutMs: number): Promise<Record<string, boolean>>;
  close(): Promise<void>;
};

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error('timeout')), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

async function answers(probe: () => Promise<unknown>, timeoutMs: number): Promise<boolean> {
  try {
    await withTimeout(probe(), timeoutMs);
    return true;
  } catch {
    return false;
  }
}

function connectRedis(
  url: string,
  name: string,
  options: { offlineQueue: boolean; autoPipelining: boolean },
): Redis {
  return new Redis(url, {
    connectionName: `mvp-${name}`,
    lazyConnect: true,
    // Commands fail fast instead of queueing forever while Redis is away.
    maxRetriesPerRequest: 2,
    enableOfflineQueue: options.offlineQueue,
    // Commands issued in the same turn of the event loop leave in one write: a socket write
    // costs more than the command (bench/README.md).
    enableAutoPipelining: options.autoPipelining,
  });
}

/** The development log sender must never run in production: codes would sit in log storage. */
function chooseOtpSender(config: ServerConfig, logger: Logger): OtpSender {
  const { otp } = config.auth;
  if (otp.sender === 'webhook') {
    if (!otp.webhookUrl || !otp.webhookSecret) {
      throw new Error(
        'MVP_OTP_SENDER=webhook needs MVP_OTP_WEBHOOK_URL and MVP_OTP_WEBHOOK_SECRET',
      );
    }
    return createWebhookOtpSender(otp.webhookUrl, otp.webhookSecret);
  }
  if (config.nodeEnv === 'production') {
    throw new Error(
      'MVP_OTP_SENDER=log is for development; set MVP_OTP_SENDER=webhook in production',
    );
  }
  return createLogOtpSender(logger);
}

/** Picks the embedded or the production implementation of every port from the config. */
export async function createInfrastructure(
  config: ServerConfig,
  logger: Logger,
  metrics: ServerMetrics,
  clock: Clock = systemClock,
): Promise<Infrastructure> {
  const otpSender = chooseOtpSender(config, logger);
  const secrets = await loadSecrets({
    dataDir: config.dataDir,
    jwtSigningKey: config.auth.jwt.signingKey,
    jwtVerifyKeys: config.auth.jwt.verifyKeys,
    dataKeys: config.auth.dataKeys,
    blindIndexKey: config.auth.blindIndexKey,
    logger,
  });
  const tokens = await createTokenSigner({
    signingKey: secrets.jwtSigningKey,
    verifyKeys: secrets.jwtVerifyKeys,
    issuer: config.auth.jwt.issuer,
    audience: config.auth.jwt.audience,
    ttlSeconds: config.auth.jwt.accessTtlSeconds,
    now: () => clock.now(),
  });
  const db = createDb(config.databaseUrl);
  const dialect = dialectOf(config.databaseUrl);
  const redisClients: Redis[] = [];
  const fingerprint = keyFingerprintOf(secrets);
  // Undefined once the keys are known to match this database (see keyFingerprint.ts).
  let keysUnchecked: (() => Promise<boolean>) | undefined;
  try {
    if (config.migrateOnStart) {
      await refuseForeignKeys(db, fingerprint);
      const { applied } = await migrateToLatest(db);
      if (applied.length) logger.info({ applied }, 'migrations applied');
    }
    try {
      const outcome = await checkKeyFingerprint(db, fingerprint);
      if (outcome !== 'matched') logger.info({ outcome }, 'key fingerprint stored in app_meta');
    } catch (err) {
      // Without migrate-on-start the server starts while the database is away (the pool
      // connects lazily) and /readyz says so; it then stays unready until the keys compared.
      if (err instanceof KeyMismatchError || config.migrateOnStart) throw err;
      logger.warn({ err }, 'keys not yet compared with the database: not ready until they are');
      keysUnchecked = async () => {
        try {
          await checkKeyFingerprint(db, fingerprint);
          keysUnchecked = undefined;
          return true;
        } catch (error) {
          if (!(error instanceof KeyMismatchError)) return false;
          // Keys are read once, at start: only a restart with other keys can change the answer.
          logger.error({ err: error }, error.message);
          keysUnchecked = () => Promise.resolve(false);
          return false;
        }
      };
    }
    const keyChecks = async (timeoutMs: number): Promise<{ keys?: boolean }> => {
      const check = keysUnchecked;
      if (!check) return {};
      const probe = async () => {
        if (!(await check())) throw new Error('keys not compared, or different');
      };
      return { keys: await answers(probe, timeoutMs) };
    };
    const base = {
      db,
      dialect,
      clock,
      logger,
      metrics,
      otpSender,
      tokens,
      authenticate: authenticatorFor(tokens),
      sessions: createSessionGuard(db, clock, config.auth.sessionCacheMs),
      posting: createPostingCache(clock, POSTING_CACHE_MS),
      cipher: createFieldCipher(secrets.fieldKeys),
      passwords: createPasswordHasher(config.auth.argon2),
      blobs: config.s3
        ? createS3BlobStore(config.s3)
        : createLocalBlobStore(path.join(config.dataDir, 'blobs')),
    };

    if (!config.redisUrl) {
      const ports: Ports = {
        ...base,
        bus: createMemoryEventBus(),
        kv: createMemoryKeyValue(clock),
        rateLimiter: createMemoryRateLimiter(),
        presence: createMemoryPresenceStore(),
      };
      return {
        ports,
        checkReady: async (timeoutMs) => ({
          database: await answers(() => sql`select 1`.execute(db), timeoutMs),
          ...(await keyChecks(timeoutMs)),
        }),
        close: async () => {
          await Promise.allSettled([
            ports.bus.close(),
            ports.kv.close(),
            ports.rateLimiter.close(),
          ]);
          await db.destroy();
        },
      };
    }

    // The bus batches its own PUBLISHes (redisEventBus.ts); the rest here is light.
    const command = connectRedis(config.redisUrl, 'command', {
      offlineQueue: true,
      autoPipelining: false,
    });
    const subscriber = connectRedis(config.redisUrl, 'subscriber', {
      offlineQueue: true,
      autoPipelining: false,
    });
    // Its own connection without an offline queue, so an outage hands over to the insurance
    // limiter at once instead of holding every request until Redis is back.
    const limiter = connectRedis(config.redisUrl, 'ratelimit', {
      offlineQueue: false,
      autoPipelining: true,
    });
    redisClients.push(command, subscriber, limiter);
    for (const client of redisClients) {
      client.on('error', (err: Error) =>
        logger.warn({ err: err.message }, 'redis connection error'),
      );
    }
    await Promise.all(redisClients.map((c) => c.connect()));

    const ports: Ports = {
      ...base,
      bus: createRedisEventBus(command, subscriber, logger, config.redisPrefix),
      kv: createRedisKeyValue(command, config.redisPrefix),
      rateLimiter: createRedisRateLimiter(limiter, config.redisPrefix),
      presence: createRedisPresenceStore(command, config.redisPrefix),
    };
    return {
      ports,
      checkReady: async (timeoutMs) => {
        const [database, redis] = await Promise.all([
          answers(() => sql`select 1`.execute(db), timeoutMs),
          answers(() => command.ping(), timeoutMs),
        ]);
        return { database, redis, ...(await keyChecks(timeoutMs)) };
      },
      close: async () => {
        await Promise.allSettled([ports.bus.close(), ports.kv.close(), ports.rateLimiter.close()]);
        await Promise.allSettled(redisClients.map((c) => c.quit()));
        await db.destroy();
      },
    };
  } catch (err) {
    redisClients.forEach((c) => c.disconnect());
    await db.destroy();
    throw err;
  }
}
