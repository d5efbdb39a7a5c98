import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { createContext, type ApiSettings } from './context';
import { AppError } from './errors/AppError';
import type { Ports } from './ports';
import { authedProcedure, createCallerFactory, publicProcedure, router } from './trpc';

// A router of its own: the accounts issue brings the first real authed procedure; the seam is
// tested here so it cannot rot until then.
const testRouter = router({
  whoami: authedProcedure.query(({ ctx }) => `${ctx.auth.userId}:${ctx.auth.deviceId}`),
  echo: publicProcedure
    .input(z.object({ n: z.number().int().max(10) }))
    .query(({ input }) => input.n),
  boom: publicProcedure.query(() => {
    throw new Error('database password is hunter2');
  }),
  post: authedProcedure.meta({ accountBudget: 'send' }).mutation(() => 'posted'),
  limited: publicProcedure.query(() => {
    throw new AppError('TOO_MANY_REQUESTS', 'slow down', { retryAfterMs: 1500 });
  }),
});
const createCaller = createCallerFactory(testRouter);

const silent = { debug() {}, info() {}, warn() {}, error() {}, child: () => silent };
// The auth settings are not used by these procedures.
const settings = {
  version: 'test',
  ipRateLimit: { name: 'ip', points: 100, durationSeconds: 60 },
  messaging: { sendLimit: { points: 10, durationSeconds: 60 } },
} as ApiSettings;

function ports(overrides: Partial<Ports> = {}): Ports {
  return {
    logger: silent,
    metrics: { observeProcedure() {}, streamWaiting() {}, streamOverflowed() {} },
    rateLimiter: { consume: async () => ({ allowed: true, remaining: 1 }), close: async () => {} },
    clock: { now: () => 1_000 },
    authenticate: async (token) => {
      if (token === 'good') return { userId: 'u1', sessionId: 's1', expiresAt: 2_000 };
      if (token === 'stale') return { userId: 'u1', sessionId: 's1', expiresAt: 500 };
      if (token === 'ended') return { userId: 'u1', sessionId: 'gone', expiresAt: 2_000 };
      return null;
    },
    sessions: {
      check: async (id) => (id === 's1' ? { userId: 'u1', deviceId: 'd1' } : null),
      forget: () => {},
    },
    ...overrides,
  } as Ports;
}

async function caller(token: string | null, overrides: Partial<Ports> = {}) {
  const ctx = await createContext(ports(overrides), settings, {
    requestId: 'r1',
    ip: '10.0.0.1',
    transport: 'http',
    token,
  });
  return createCaller(ctx);
}

async function errorOf(promise: Promise<unknown>) {
  try {
    await promise;
  } catch (e) {
    return e as AppError;
  }
  throw new Error('expected a rejection');
}

describe('procedures and errors', () => {
  it('authedProcedure: a valid token passes, none or a bad one is UNAUTHORIZED', async () => {
    expect(await (await caller('good')).whoami()).toBe('u1:d1');
    expect((await errorOf((await caller('stale')).whoami())).message).toBe('Token expired');
    expect((await errorOf((await caller('ended')).whoami())).message).toBe('Session ended');
    expect((await errorOf((await caller(null)).whoami())).code).toBe('UNAUTHORIZED');
    const bad = await errorOf((await caller('forged')).whoami());
    expect(bad.code).toBe('UNAUTHORIZED');
    expect(bad.message).toBe('Invalid token');
  });

  it('the per-address limit refuses with TOO_MANY_REQUESTS and the wait', async () => {
    const c = await caller(null, {
      rateLimiter: {
        consume: async () => ({ allowed: false, remaining: 0, retryAfterMs: 900 }),
        close: async () => {},
      },
    });
    const error = await errorOf(c.echo({ n: 1 }));
    expect(error).toBeInstanceOf(AppError);
    expect(error.appCode).toBe('TOO_MANY_REQUESTS');
    expect(error.retryAfterMs).toBe(900);
  });

  it('a procedure with an account budget asks it together with the per-address one', async () => {
    const asked: string[] = [];
    let inFlight = 0;
    let mostInFlight = 0;
    let refuse = '';
    const rateLimiter: Ports['rateLimiter'] = {
      async consume(rule, key) {
        asked.push(`${rule.name}/${rule.points}:${key}`);
        mostInFlight = Math.max(mostInFlight, ++inFlight);
        await Promise.resolve();
        inFlight--;
        return rule.name === refuse
          ? { allowed: false, remaining: 0, retryAfterMs: 700 }
          : { allowed: true, remaining: 1 };
      },
      close: async () => {},
    };
    const c = await caller('good', { rateLimiter });
    expect(await c.post()).toBe('posted');
    expect(asked).toEqual(['ip/100:10.0.0.1', 'send-account/10:u1']);
    expect(mostInFlight).toBe(2); // both asked before either answered: one round trip

    refuse = 'send-account';
    const error = await errorOf(c.post());
    expect([error.appCode, error.retryAfterMs]).toEqual(['TOO_MANY_REQUESTS', 700]);

    // The account is not charged before its session is known to be live (a revoked token
    // does not drain its owner's budget); the address is, so a flood of bad tokens is limited.
    refuse = '';
    asked.length = 0;
    for (const token of [null, 'ended', 'stale']) {
      const refused = await caller(token, { rateLimiter });
      expect((await errorOf(refused.post())).code).toBe('UNAUTHORIZED');
    }
    expect(asked).toEqual(Array(3).fill('ip/100:10.0.0.1'));
    refuse = 'ip';
    const flooded = await errorOf((await caller('ended', { rateLimiter })).post());
    expect([flooded.appCode, flooded.retryAfterMs]).toEqual(['TOO_MANY_REQUESTS', 700]);
  });

  it('counts every call with its outcome', async () => {
    const seen: string[] = [];
    const c = await caller(null, {
      metrics: {
        observeProcedure: (o) => seen.push(`${o.path}:${o.outcome}`),
        streamWaiting() {},
        streamOverflowed() {},
      },
    });
    await c.echo({ n: 1 });
    await errorOf(c.echo({ n: 99 }));
    expect(seen).toEqual(['echo:ok', 'echo:BAD_REQUEST']);
  });
});

describe('error formatter', () => {
  const format = (error: unknown) => {
    const config = testRouter._def._config;
    return config.errorFormatter({
      error: error as never,
      type: 'query',
      path: 'x',
      input: undefined,
      ctx: { requestId: 'req-1', transport: 'http' },
      shape: {
        message: (error as Error).message,
        code: -32600,
        data: {
          code: (error as AppError).code,
          httpStatus: 400,
          path: 'x',
          stack: 'at secret.ts:1',
        },
      },
    });
  };

  it('BAD_REQUEST from zod gets flattened field issues and a short message, no stack', async () => {
    const error = await errorOf((await caller(null)).echo({ n: 99 }));
    const shape = format(error);
    expect(shape.data).toEqual({
      code: 'BAD_REQUEST',
      httpStatus: 400,
      appCode: 'BAD_REQUEST',
      requestId: 'req-1',
      issues: [{ path: 'n', message: expect.any(String) as string, code: 'too_big' }],
    });
    expect(shape.message).toMatch(/^Invalid input: n: /);
  });

  it('an unexpected error becomes a generic INTERNAL_SERVER_ERROR without its text', async () => {
    const error = await errorOf((await caller(null)).boom());
    const shape = format(error);
    expect(shape.data.appCode).toBe('INTERNAL_SERVER_ERROR');
    expect(shape.data.httpStatus).toBe(500);
    expect(JSON.stringify(shape)).not.toContain('hunter2');
    expect(JSON.stringify(shape)).not.toContain('secret.ts');
  });

  it('TOO_MANY_REQUESTS carries retryAfterMs and HTTP 429', async () => {
    const shape = format(await errorOf((await caller(null)).limited()));
    expect(shape.data).toMatchObject({
      appCode: 'TOO_MANY_REQUESTS',
      httpStatus: 429,
      retryAfterMs: 1500,
    });
  });
});
