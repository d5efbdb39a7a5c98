import type { Context } from '../../context';
import { AppError } from '../../errors/AppError';

/**
 * Growing waits after failed logins, keyed by the login's budget (the identifier, or the device
 * cookie shown) and address: after `after` failures each further one doubles the wait, capped at
 * `maxSeconds`. Not a lockout: a stranger failing from elsewhere does not lock the owner out, and
 * the wait always ends.
 */
const key = (budgetKey: string, ip: string) => `login-fail:${budgetKey}:${ip}`;
const WINDOW_MS = 24 * 3600 * 1000;

type State = { failures: number; lastAt: number };

function waitMs(ctx: Context, state: State): number {
  const { after, maxSeconds } = ctx.settings.auth.loginBackoff;
  if (state.failures < after) return 0;
  const seconds = Math.min(maxSeconds, 2 ** (state.failures - after));
  return Math.max(0, state.lastAt + seconds * 1000 - ctx.ports.clock.now());
}

async function read(ctx: Context, budgetKey: string): Promise<State> {
  const raw = await ctx.ports.kv.get(key(budgetKey, ctx.ip));
  return raw ? (JSON.parse(raw) as State) : { failures: 0, lastAt: 0 };
}

export async function assertNotBackedOff(ctx: Context, budgetKey: string): Promise<void> {
  const wait = waitMs(ctx, await read(ctx, budgetKey));
  if (wait > 0) {
    throw new AppError('TOO_MANY_REQUESTS', 'Too many failed sign-ins; wait a little', {
      retryAfterMs: wait,
    });
  }
}

export async function recordFailure(ctx: Context, budgetKey: string): Promise<void> {
  const state = await read(ctx, budgetKey);
  const next: State = { failures: state.failures + 1, lastAt: ctx.ports.clock.now() };
  await ctx.ports.kv.set(key(budgetKey, ctx.ip), JSON.stringify(next), { ttlMs: WINDOW_MS });
}

export async function clearFailures(ctx: Context, budgetKey: string): Promise<void> {
  await ctx.ports.kv.del(key(budgetKey, ctx.ip));
}
