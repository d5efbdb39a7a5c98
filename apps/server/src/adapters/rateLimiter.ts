import {
  RateLimiterMemory,
  RateLimiterRedis,
  RateLimiterRes,
  type RateLimiterAbstract,
} from 'rate-limiter-flexible';
import type { Redis } from 'ioredis';
import type { RateLimitRule, RateLimiter } from '@mvp/api';

type Factory = (rule: RateLimitRule) => RateLimiterAbstract;

/**
 * Both backends through rate-limiter-flexible. Limiters are created once per rule name. With
 * Redis, each limiter has an in-memory insurance limiter: when Redis is down, limits are kept
 * per instance instead of every request failing.
 */
function createRateLimiter(factory: Factory): RateLimiter {
  const limiters = new Map<string, RateLimiterAbstract>();
  // Callers pass the same rule object call after call (their settings'): found by it first,
  // without building its key string on every request.
  const byRule = new WeakMap<RateLimitRule, RateLimiterAbstract>();
  const limiterFor = (rule: RateLimitRule) => {
    let limiter = byRule.get(rule);
    if (limiter) return limiter;
    const id = `${rule.name}:${rule.points}:${rule.durationSeconds}`;
    limiter = limiters.get(id);
    if (!limiter) limiters.set(id, (limiter = factory(rule)));
    byRule.set(rule, limiter);
    return limiter;
  };
  return {
    async consume(rule, key, points = 1) {
      try {
        const res = await limiterFor(rule).consume(key, points);
        return { allowed: true, remaining: res.remainingPoints };
      } catch (rejection) {
        if (rejection instanceof RateLimiterRes) {
          return {
            allowed: false,
            remaining: 0,
            retryAfterMs: Math.max(1, rejection.msBeforeNext),
          };
        }
        throw rejection; // a store error with no insurance left: fail closed
      }
    },
    async close() {
      limiters.clear();
    },
  };
}

const memoryLimiter = (rule: RateLimitRule) =>
  new RateLimiterMemory({
    keyPrefix: `rl:${rule.name}`,
    points: rule.points,
    duration: rule.durationSeconds,
  });

export function createMemoryRateLimiter(): RateLimiter {
  return createRateLimiter(memoryLimiter);
}

export function createRedisRateLimiter(redis: Redis, namespace: string): RateLimiter {
  return createRateLimiter(
    (rule) =>
      new RateLimiterRedis({
        storeClient: redis,
        keyPrefix: `${namespace}rl:${rule.name}`,
        points: rule.points,
        duration: rule.durationSeconds,
        insuranceLimiter: memoryLimiter(rule),
      }),
  );
}
