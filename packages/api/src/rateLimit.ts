import type { Context } from './context';
import { AppError } from './errors/AppError';

type Limit = { points: number; durationSeconds: number };

/** Spends one point of `name` for `key`; over budget → TOO_MANY_REQUESTS carrying the wait. */
export async function enforceLimit(
  ctx: Context,
  name: string,
  limit: Limit,
  key: string,
): Promise<void> {
  const decision = await ctx.ports.rateLimiter.consume({ name, ...limit }, key);
  if (!decision.allowed) {
    throw new AppError('TOO_MANY_REQUESTS', 'Too many attempts, try again later', {
      retryAfterMs: decision.retryAfterMs,
    });
  }
}
