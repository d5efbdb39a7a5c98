import type { Context } from './context';
import type { RateLimitDecision } from './ports';
import { AppError } from './errors/AppError';

type Limit = { points: number; durationSeconds: number };

/** A refused decision → TOO_MANY_REQUESTS carrying the wait. */
export function assertAllowed(decision: RateLimitDecision, message: string): void {
  if (!decision.allowed) {
    throw new AppError('TOO_MANY_REQUESTS', message, { retryAfterMs: decision.retryAfterMs });
  }
}

/** Spends `points` (one) of `name` for `key`; over budget → TOO_MANY_REQUESTS carrying the wait. */
export async function enforceLimit(
  ctx: Context,
  name: string,
  limit: Limit,
  key: string,
  points = 1,
): Promise<void> {
  const decision = await ctx.ports.rateLimiter.consume({ name, ...limit }, key, points);
  assertAllowed(decision, 'Too many attempts, try again later');
}
