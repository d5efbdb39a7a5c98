import { TRPCClientError, type Operation, type TRPCLink } from '@trpc/client';
import type { AppRouter } from '@mvp/api';
import { observable, type Unsubscribable } from '@trpc/server/observable';
import type { AuthSession } from './authSession';
import { errorCodeOf } from './errors';

// The HTTP link writes the token it actually sent here, so a rejection is matched to that token
// rather than to whatever the store holds by the time the answer arrives.
const SENT_TOKEN = 'mvpSentToken';
type SentToken = { value: string | null };

function isSentToken(value: unknown): value is SentToken {
  return typeof value === 'object' && value !== null && 'value' in value;
}

/** Called by the HTTP link's `headers` for every operation of the batch it is about to send. */
export function noteSentToken(op: Operation, token: string | null): void {
  const holder = op.context[SENT_TOKEN];
  if (isSentToken(holder)) holder.value = token;
}

/** Sign-in procedures answer for themselves; only the session's own calls are worth retrying. */
export function isAuthPath(path: string): boolean {
  return path.startsWith('auth.');
}

/** Register, login, OTP and refresh are public: sending (or first refreshing) a token is waste. */
export function isPublicAuthPath(path: string): boolean {
  return isAuthPath(path) && path !== 'auth.logout';
}

/**
 * When a query or mutation comes back UNAUTHORIZED although it carried a token, refresh (shared
 * with every other caller) and send it once more. Subscriptions are left alone: the WebSocket
 * authenticates once per connection, and its connectionParams take a fresh token on reconnect.
 */
export function authRetryLink(session: Pick<AuthSession, 'recover'>): TRPCLink<AppRouter> {
  return () =>
    ({ op, next }) => {
      if (op.type === 'subscription' || isAuthPath(op.path)) return next(op);
      return observable((observer) => {
        let disposed = false;
        let retried = false;
        let inner: Unsubscribable | undefined;

        const send = () => {
          const sent: SentToken = { value: null };
          inner = next({ ...op, context: { ...op.context, [SENT_TOKEN]: sent } }).subscribe({
            next: (result) => observer.next(result),
            complete: () => observer.complete(),
            error: (error) => {
              if (retried || !sent.value || errorCodeOf(error) !== 'UNAUTHORIZED') {
                observer.error(error);
                return;
              }
              retried = true;
              session.recover(sent.value).then(
                (ready) => {
                  if (disposed) return;
                  // No newer token (the session ended): the original answer is the true one.
                  if (ready) send();
                  else observer.error(error);
                },
                (refreshError: unknown) => {
                  if (disposed) return;
                  observer.error(
                    refreshError instanceof Error
                      ? TRPCClientError.from<AppRouter>(refreshError)
                      : error,
                  );
                },
              );
            },
          });
        };

        send();
        return () => {
          disposed = true;
          inner?.unsubscribe();
        };
      });
    };
}
