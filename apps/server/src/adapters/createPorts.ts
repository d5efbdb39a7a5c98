import { Redis } from 'ioredis';
import { sql } from 'kysely';
import { createDb, dialectOf, migrateToLatest } from '@mvp/db';
import { refuseAllTokens, systemClock, type Logger, type Ports } from '@mvp/api';
import type { ServerConfig } from '../config';
import type { ServerMetrics } from '../metrics';
import { createMemoryEventBus } from './memory/memoryEventBus';
import { createMemoryKeyValue } from './memory/memoryKeyValue';
import { createMemoryRateLimiter, createRedisRateLimiter } from './rateLimiter';
import { createRedisEventBus } from './redis/redisEventBus';
import { createRedisKeyValue } from './redis/redisKeyValue';

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

function connectRedis(url: string, name: string, options: { offlineQueue: boolean }): Redis {
  return new Redis(url, {
    connectionName: `mvp-${name}`,
    lazyConnect: true,
    // Commands fail fast instead of queueing forever while Redis is away.
    maxRetriesPerRequest: 2,
    enableOfflineQueue: options.offlineQueue,
  });
}

/** Picks the embedded or the production implementation of every port from the config. */
export async function createInfrastructure(
  config: ServerConfig,
  logger: Logger,
  metrics: ServerMetrics,
): Promise<Infrastructure> {
  const db = createDb(config.databaseUrl);
  const dialect = dialectOf(config.databaseUrl);
  const redisClients: Redis[] = [];
  try {
    if (config.migrateOnStart) {
      const { applied } = await migrateToLatest(db);
      if (applied.length) logger.info({ applied }, 'migrations applied');
    }
    const base = {
      db,
      dialect,
      clock: systemClock,
      logger,
      metrics,
      authenticate: refuseAllTokens,
    };

    if (!config.redisUrl) {
      const ports: Ports = {
        ...base,
        bus: createMemoryEventBus(),
        kv: createMemoryKeyValue(systemClock),
        rateLimiter: createMemoryRateLimiter(),
      };
      return {
        ports,
        checkReady: async (timeoutMs) => ({
          database: await answers(() => sql`select 1`.execute(db), timeoutMs),
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

    const command = connectRedis(config.redisUrl, 'command', { offlineQueue: true });
    const subscriber = connectRedis(config.redisUrl, 'subscriber', { offlineQueue: true });
    // Its own connection without an offline queue, so an outage hands over to the insurance
    // limiter at once instead of holding every request until Redis is back.
    const limiter = connectRedis(config.redisUrl, 'ratelimit', { offlineQueue: false });
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
    };
    return {
      ports,
      checkReady: async (timeoutMs) => {
        const [database, redis] = await Promise.all([
          answers(() => sql`select 1`.execute(db), timeoutMs),
          answers(() => command.ping(), timeoutMs),
        ]);
        return { database, redis };
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
