import { createEnv } from '@t3-oss/env-core';
import { z } from 'zod';

/**
 * The only reader of process.env. Every variable is listed and validated here; .env.example,
 * the README and docker-compose.yml use exactly these names (a test checks compose).
 */
const bool = z.enum(['true', 'false', '1', '0']).transform((v) => v === 'true' || v === '1');
const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);
const originList = z
  .string()
  .transform((s) =>
    s
      .split(',')
      .map((o) => o.trim())
      .filter(Boolean),
  )
  .pipe(z.array(z.url().transform((u) => new URL(u).origin)));

export const envSchema = {
  NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
  MVP_HOST: z.string().min(1).default('127.0.0.1'),
  MVP_PORT: int(0, 65_535).default(3000),
  MVP_PUBLIC_URL: z.url().optional(),
  DATABASE_URL: z
    .string()
    .regex(/^(mysql:\/\/|sqlite:)/, 'expected mysql://… or sqlite:<path>')
    .default('sqlite:./data/mvp.db'),
  REDIS_URL: z
    .string()
    .regex(/^rediss?:\/\//, 'expected redis://…')
    .optional(),
  MVP_REDIS_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9:_-]{1,64}$/)
    .default('mvp:'),
  MVP_MIGRATE_ON_START: bool.default(true),
  MVP_ALLOWED_ORIGINS: originList.default([]),
  MVP_TRUST_PROXY: bool.default(false),
  MVP_WS_MAX_PAYLOAD_BYTES: int(1024, 16 * 1024 * 1024).default(64 * 1024),
  MVP_HTTP_MAX_BODY_BYTES: int(1024, 64 * 1024 * 1024).default(1024 * 1024),
  MVP_WS_PING_MS: int(1_000, 600_000).default(30_000),
  MVP_WS_PONG_WAIT_MS: int(1_000, 600_000).default(10_000),
  MVP_RATE_LIMIT_IP_POINTS: int(1, 1_000_000).default(600),
  MVP_RATE_LIMIT_IP_WINDOW_SECONDS: int(1, 86_400).default(60),
  MVP_SHUTDOWN_TIMEOUT_MS: int(100, 600_000).default(10_000),
  MVP_LOG_LEVEL: z
    .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])
    .default('info'),
  MVP_METRICS_TOKEN: z.string().min(16).optional(),
  MVP_DOCS_ENABLED: bool.default(true),
};

export const ENV_VARIABLES = Object.keys(envSchema);

export type Env = ReturnType<typeof parseEnv>;

export class EnvError extends Error {
  override name = 'EnvError';
}

export function parseEnv(source: Record<string, string | undefined> = process.env) {
  return createEnv({
    server: envSchema,
    runtimeEnv: source,
    emptyStringAsUndefined: true,
    isServer: true,
    onValidationError: (issues) => {
      // One line that names the variable and never echoes its value (it may be a secret).
      const first = issues[0];
      const head = first?.path?.[0];
      const name = typeof head === 'object' ? head.key : (head ?? '?');
      const more = issues.length > 1 ? ` (and ${issues.length - 1} more)` : '';
      throw new EnvError(
        `invalid environment: ${String(name)}: ${first?.message ?? 'invalid'}${more}`,
      );
    },
  });
}
