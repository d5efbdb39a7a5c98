import { initTRPC } from '@trpc/server';
import superjson from 'superjson';
import type { OpenApiMeta } from 'trpc-to-openapi';
import type { Context } from './context';
import { AppError } from './errors/AppError';
import { appCodeOf, errorFormatter } from './errors/errorFormatter';

export type Meta = OpenApiMeta;

const t = initTRPC
  .context<Context>()
  .meta<Meta>()
  .create({ transformer: superjson, errorFormatter, isDev: false });

export const router = t.router;
export const createCallerFactory = t.createCallerFactory;

/** Counts and times every call; logs failures (internal ones with the error, never the input). */
const observed = t.middleware(async ({ ctx, path, type, next }) => {
  const started = performance.now();
  const result = await next();
  const seconds = (performance.now() - started) / 1000;
  const outcome = result.ok ? 'ok' : result.error.code;
  ctx.ports.metrics.observeProcedure({ path, type, outcome, seconds });
  if (!result.ok) {
    const appCode = appCodeOf(result.error);
    if (appCode === 'INTERNAL_SERVER_ERROR') {
      ctx.log.error({ err: result.error.cause ?? result.error, path }, 'procedure failed');
    } else {
      ctx.log.debug({ path, appCode }, 'procedure refused');
    }
  }
  return result;
});

const ipRateLimited = t.middleware(async ({ ctx, next }) => {
  const decision = await ctx.ports.rateLimiter.consume(ctx.settings.ipRateLimit, ctx.ip);
  if (!decision.allowed) {
    throw new AppError('TOO_MANY_REQUESTS', 'Too many requests', {
      retryAfterMs: decision.retryAfterMs,
    });
  }
  return next();
});

export const publicProcedure = t.procedure.use(observed).use(ipRateLimited);

/** The seam for the accounts issue: the caller must present a valid token. */
export const authedProcedure = publicProcedure.use(({ ctx, next }) => {
  if (!ctx.auth) {
    throw new AppError('UNAUTHORIZED', ctx.tokenRejected ? 'Invalid token' : 'Sign in first');
  }
  return next({ ctx: { ...ctx, auth: ctx.auth } });
});
