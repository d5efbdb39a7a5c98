import { initTRPC, TRPCError } from '@trpc/server';
import type { OpenApiMeta } from 'trpc-to-openapi';
import type { Context, TransportContext } from './context';
import type { AuthInfo, RateLimitDecision, RateLimitRule } from './ports';
import type { ProcedureObservation } from './ports/Metrics';
import { AppError } from './errors/AppError';
import { appCodeOf, errorFormatter } from './errors/errorFormatter';
import { assertAllowed } from './rateLimit';
import { transformer } from './transformer';

/**
 * OpenApiMeta, spelled out so that the router's type (and so the SDK's bundled types) does not
 * import trpc-to-openapi. The assignment below fails to compile if the two drift apart.
 */
export type Meta = {
  openapi?: {
    enabled?: boolean;
    method: 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE';
    path: `/${string}`;
    operationId?: string;
    summary?: string;
    description?: string;
    protect?: boolean;
    tags?: string[];
    deprecated?: boolean;
    successDescription?: string;
    errorResponses?: number[] | Record<number, string>;
  };
  /** A per-account budget the procedure spends as well as the per-address one (see guard). */
  accountBudget?: AccountBudget;
};
const _metaFitsOpenApi = (meta: Meta): OpenApiMeta => meta;

// The root context type is TransportContext (see context.ts); `withContext` below restores the
// full Context for every procedure.
const t = initTRPC
  .context<TransportContext>()
  .meta<Meta>()
  .create({ transformer, errorFormatter, isDev: false });

export const router = t.router;
export const createCallerFactory = t.createCallerFactory;

type AccountBudget = 'send';
const ACCOUNT_BUDGETS: Record<AccountBudget, (settings: Context['settings']) => RateLimitRule> = {
  // Messages, edits, envelope batches, and reactions, pins and deletions (told to every member).
  send: (settings) => ({ name: 'send-account', ...settings.messaging.sendLimit }),
};
/** Each budget's rule, made once per settings: one object per rule, not per call. */
const budgetRules = new WeakMap<Context['settings'], Map<AccountBudget, RateLimitRule>>();
function budgetRule(settings: Context['settings'], budget: AccountBudget): RateLimitRule {
  let rules = budgetRules.get(settings);
  if (!rules) budgetRules.set(settings, (rules = new Map<AccountBudget, RateLimitRule>()));
  let rule = rules.get(budget);
  if (!rule) rules.set(budget, (rule = ACCOUNT_BUDGETS[budget](settings)));
  return rule;
}
const NO_BUDGET: RateLimitDecision = { allowed: true, remaining: 1 };

/**
 * One point of the caller's per-address budget and, when given, of an account's budget. Both
 * are asked at once: the limiter's connection pipelines them into one round trip, one socket
 * write and wake-up fewer per send (bench/README.md, session 10). Exported without an account
 * budget for the few plain HTTP routes.
 */
export async function spendBudgets(
  ctx: Context,
  account?: { budget: AccountBudget; userId: string },
): Promise<void> {
  const limiter = ctx.ports.rateLimiter;
  const [perAddress, perAccount] = await Promise.all([
    ctx.addressBudgetSpent ? NO_BUDGET : limiter.consume(ctx.settings.ipRateLimit, ctx.ip),
    account ? limiter.consume(budgetRule(ctx.settings, account.budget), account.userId) : NO_BUDGET,
  ]);
  assertAllowed(perAddress, 'Too many requests');
  assertAllowed(perAccount, 'Too many attempts, try again later');
}

type DeviceAuth = AuthInfo & { deviceId: string };
/**
 * The answer last made for a token's `AuthInfo` (a WebSocket's context keeps one for all its
 * calls): the same object again while the session names the same device, not a copy per call.
 */
const withDevice = new WeakMap<AuthInfo, DeviceAuth>();

/** authedProcedure's check, exported so plain HTTP routes (avatar upload) authenticate alike. */
export async function requireAuth(ctx: Context): Promise<DeviceAuth> {
  const auth = ctx.auth;
  if (!auth) {
    throw new AppError('UNAUTHORIZED', ctx.tokenRejected ? 'Invalid token' : 'Sign in first');
  }
  if (auth.expiresAt <= ctx.ports.clock.now()) throw new AppError('UNAUTHORIZED', 'Token expired');
  const live = await ctx.ports.sessions.check(auth.sessionId);
  if (!live || live.userId !== auth.userId) throw new AppError('UNAUTHORIZED', 'Session ended');
  const known = withDevice.get(auth);
  if (known?.deviceId === live.deviceId) return known;
  const answer = Object.freeze({ ...auth, deviceId: live.deviceId });
  withDevice.set(auth, answer);
  return answer;
}

/** A failed call's outcome (its code), logged: internal ones with the error, never the input. */
function failed(ctx: Context, path: string, error: TRPCError): string {
  const appCode = appCodeOf(error);
  if (appCode === 'INTERNAL_SERVER_ERROR') {
    ctx.log.error({ err: error.cause ?? error, path }, 'procedure failed');
  } else {
    ctx.log.debug({ path, appCode }, 'procedure refused');
  }
  return error.code;
}

type Outcome = { ok: true } | { ok: false; error: TRPCError };

/**
 * What every procedure does around its work (which spends its budgets): count and time the
 * call, log failures (internal ones with the error, never the input).
 */
async function guard<R extends Outcome>(
  ctx: Context,
  path: string,
  type: ProcedureObservation['type'],
  work: () => Promise<R>,
): Promise<R> {
  const started = performance.now();
  let outcome = 'ok';
  try {
    const result = await work();
    const seen: Outcome = result;
    if (!seen.ok) outcome = failed(ctx, path, seen.error);
    return result;
  } catch (err) {
    // The budget or the auth check threw: next() answers a failed result instead of throwing.
    const error =
      err instanceof TRPCError ? err : new TRPCError({ code: 'INTERNAL_SERVER_ERROR', cause: err });
    outcome = failed(ctx, path, error);
    throw err;
  } finally {
    const seconds = (performance.now() - started) / 1000;
    ctx.ports.metrics.observeProcedure({ path, type, outcome, seconds });
  }
}

/**
 * The root context type is TransportContext, but at run time every context is the full Context
 * (createContext() is its only producer). These casts restore it for the types only: tRPC
 * copies the context whenever a middleware passes one to next() (and its options at every
 * step), a measurable share of a cheap call, so public procedures pass nothing on and authed ones
 * pass only `auth`. One middleware per procedure for the same reason.
 */
const SAME_CONTEXT = undefined as unknown as Context;
type Authed = Omit<Context, 'auth'> & { auth: AuthInfo & { deviceId: string } };

export const publicProcedure = t.procedure.use(({ ctx, path, type, next }) =>
  guard(ctx as Context, path, type, async () => {
    await spendBudgets(ctx as Context);
    return next({ ctx: SAME_CONTEXT });
  }),
);

/**
 * The caller must present a valid access token, still unexpired (a WebSocket keeps the context
 * it connected with), for a session that is still live (checked per call, briefly cached).
 * tRPC merges what is passed into the context.
 */
export const authedProcedure = t.procedure.use(({ ctx, path, type, meta, next }) =>
  guard(ctx as Context, path, type, async () => {
    // An account's budget is spent only once its session is known to be live (a revoked
    // token must not drain its owner's), so a procedure with one asks for both budgets after
    // the session check, in one round trip; the others spend the address's first. A call
    // refused by the check spends the address's all the same: a flood of bad tokens is limited.
    const budget = meta?.accountBudget;
    if (!budget) await spendBudgets(ctx as Context);
    let auth: DeviceAuth;
    try {
      auth = await requireAuth(ctx as Context);
    } catch (err) {
      if (budget) await spendBudgets(ctx as Context);
      throw err;
    }
    if (budget) await spendBudgets(ctx as Context, { budget, userId: auth.userId });
    return next({ ctx: { auth } as Authed });
  }),
);
