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

/**
 * A request body over the server's HTTP limit (`MVP_HTTP_MAX_BODY_BYTES`). The server answers it
 * with PAYLOAD_TOO_LARGE, but it is refused before tRPC reads it, so the answer may not be
 * tRPC's (an older server's, or a proxy's own 413): tRPC then keeps only the response, whose
 * status still tells.
 */
export function isPayloadTooLarge(error: unknown): boolean {
  if (!(error instanceof TRPCClientError)) return false;
  const data = error.data as { appCode?: unknown; code?: unknown } | undefined;
  const meta = error.meta as { response?: { status?: unknown } } | undefined;
  return (
    data?.appCode === 'PAYLOAD_TOO_LARGE' ||
    data?.code === 'PAYLOAD_TOO_LARGE' ||
    meta?.response?.status === 413
  );
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
  // Sent again it fails again, for good: retried, it would hold up its conversation's later sends.
  if (isPayloadTooLarge(error)) return { retry: false };
  if (!isMvpError(error)) return { retry: true };
  const data = error.data as Partial<MvpErrorData>;
  if (data.appCode === 'TOO_MANY_REQUESTS')
    return { retry: true, afterMs: data.retryAfterMs ?? undefined };
  if (data.appCode && PERMANENT.has(data.appCode)) return { retry: false };
  if (data.appCode === 'UNAUTHORIZED' || (data.httpStatus ?? 500) >= 500) return { retry: true };
  return { retry: false };
}
