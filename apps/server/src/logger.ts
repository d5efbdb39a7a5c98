import pino, { type DestinationStream, type Logger as PinoLogger } from 'pino';

/**
 * Secrets never reach a log line, whatever object they ride in on. Paths are pino's redact
 * syntax; `*` is one level, so the common nestings are listed explicitly.
 */
const SECRET_KEYS = [
  'authorization',
  'cookie',
  'token',
  'accessToken',
  'refreshToken',
  'password',
  'currentPassword',
  'newPassword',
  'otp',
  'otpCode',
  'secret',
  'connectionParams',
  // mysql2 puts a failed query on its error with the values filled in (hashes, ciphertext).
  'sql',
];

export const REDACT_PATHS = [
  ...SECRET_KEYS,
  ...SECRET_KEYS.map((k) => `*.${k}`),
  ...SECRET_KEYS.map((k) => `*.*.${k}`),
  'req.headers["x-api-key"]',
];

export type CreateLoggerOptions = { level: string; destination?: DestinationStream };

export function createLogger({ level, destination }: CreateLoggerOptions): PinoLogger {
  return pino(
    {
      level,
      base: { service: 'mvp' },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    destination,
  );
}
