import type { Context } from './context';
import type { RateLimitDecision, RateLimitRule } from './ports';
import { AppError } from './errors/AppError';

type Limit = { points: number; durationSeconds: number };

/** A refused decision → TOO_MANY_REQUESTS carrying the wait. */
export function assertAllowed(decision: RateLimitDecision, message: string): void {
  if (!decision.allowed) {
    throw new AppError('TOO_MANY_REQUESTS', message, { retryAfterMs: decision.retryAfterMs });
  }
}

/**
 * Each limit's rule under each name, made once: the limiter keeps its limiters by rule object
 * (apps/server rateLimiter.ts), and a new object per call was a new entry in its WeakMap per call
 * (one per `calls.signal`). Limits are the settings' objects, or module constants.
 */
const rules = new WeakMap<Limit, Map<string, RateLimitRule>>();
export function ruleOf(name: string, limit: Limit): RateLimitRule {
  let byName = rules.get(limit);
  if (!byName) rules.set(limit, (byName = new Map<string, RateLimitRule>()));
  let rule = byName.get(name);
  if (!rule) byName.set(name, (rule = { name, ...limit }));
  return rule;
}

/** Spends `points` (one) of `name` for `key`; over budget → TOO_MANY_REQUESTS carrying the wait. */
export async function enforceLimit(
  ctx: Context,
  name: string,
  limit: Limit,
  key: string,
  points = 1,
): Promise<void> {
  const decision = await ctx.ports.rateLimiter.consume(ruleOf(name, limit), key, points);
  assertAllowed(decision, 'Too many attempts, try again later');
}
