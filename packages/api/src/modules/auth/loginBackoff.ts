import type { Context } from '../../context';
import { AppError } from '../../errors/AppError';

/**
 * Growing waits after failed logins, keyed by the login's budget (the identifier, or the device
 * cookie shown) and address: after `after` failures each further one doubles the wait, capped at
 * `maxSeconds`. Not a lockout: a stranger failing from elsewhere does not lock the owner out, and
 * the wait always ends.
 */
const key = (budgetKey: string, ip: string) => `login-fail:${budgetKey}:${ip}`;
// The count by an atomic increment: read, added to and written back, failures made at the same
// moment counted as one (the per-identifier budget still capped them).
const countKey = (budgetKey: string, ip: string) => `${key(budgetKey, ip)}:n`;
const lastKey = (budgetKey: string, ip: string) => `${key(budgetKey, ip)}:at`;
const WINDOW_MS = 24 * 3600 * 1000;

type State = { failures: number; lastAt: number };

function waitMs(ctx: Context, state: State): number {
  const { after, maxSeconds } = ctx.settings.auth.loginBackoff;
  if (state.failures < after) return 0;
  const seconds = Math.min(maxSeconds, 2 ** (state.failures - after));
  return Math.max(0, state.lastAt + seconds * 1000 - ctx.ports.clock.now());
}

async function read(ctx: Context, budgetKey: string): Promise<State> {
  const { kv } = ctx.ports;
  const [count, last] = await Promise.all([
    kv.get(countKey(budgetKey, ctx.ip)),
    kv.get(lastKey(budgetKey, ctx.ip)),
  ]);
  return { failures: Number(count ?? 0), lastAt: Number(last ?? 0) };
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
  const { kv, clock } = ctx.ports;
  await kv.incr(countKey(budgetKey, ctx.ip), { ttlMs: WINDOW_MS });
  await kv.set(lastKey(budgetKey, ctx.ip), String(clock.now()), { ttlMs: WINDOW_MS });
}

export async function clearFailures(ctx: Context, budgetKey: string): Promise<void> {
  await Promise.all([
    ctx.ports.kv.del(countKey(budgetKey, ctx.ip)),
    ctx.ports.kv.del(lastKey(budgetKey, ctx.ip)),
  ]);
}
