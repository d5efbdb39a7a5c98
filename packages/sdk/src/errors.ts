import { TRPCClientError } from '@trpc/client';
import type { inferRouterError } from '@trpc/server';
import type { AppRouter } from '@mvp/api';

export type MvpErrorData = inferRouterError<AppRouter>['data'];
export type MvpErrorCode = MvpErrorData['appCode'];

/** An error the server answered with (as opposed to a network failure or a bug in the app). */
export function isMvpError(error: unknown): error is TRPCClientError<AppRouter> {
  return error instanceof TRPCClientError && typeof error.data === 'object' && error.data !== null;
}

/** The stable application code of a server error, for `switch`; undefined for anything else. */
export function errorCodeOf(error: unknown): MvpErrorCode | undefined {
  return isMvpError(error) ? (error.data as MvpErrorData | undefined)?.appCode : undefined;
}

/** Codes that will not change by sending the same thing again. */
const PERMANENT = new Set<string>([
  'BAD_REQUEST',
  'FORBIDDEN',
  'NOT_FOUND',
  'PAYLOAD_TOO_LARGE',
  'CONFLICT',
  'UNSUPPORTED_MEDIA_TYPE',
]);

type Verdict = { retry: false } | { retry: true; afterMs?: number };

/**
 * Whether sending the same request again may succeed: the outbox's sends, and the sync engine's
 * acknowledgements. Permanent answers fail the message; everything else is worth another try
 * with the same id: network failures (no answer: the request may or may not have arrived, which
 * is exactly why the id is reused), 5xx and SERVICE_UNAVAILABLE, TOO_MANY_REQUESTS after the
 * server's wait, and UNAUTHORIZED (signed out or a token hiccup: the message waits for a session
 * rather than vanish).
 */
export function classifySendError(error: unknown): Verdict {
  if (!isMvpError(error)) return { retry: true };
  const data = error.data as Partial<MvpErrorData>;
  if (data.appCode === 'TOO_MANY_REQUESTS')
    return { retry: true, afterMs: data.retryAfterMs ?? undefined };
  if (data.appCode && PERMANENT.has(data.appCode)) return { retry: false };
  if (data.appCode === 'UNAUTHORIZED' || (data.httpStatus ?? 500) >= 500) return { retry: true };
  return { retry: false };
}
