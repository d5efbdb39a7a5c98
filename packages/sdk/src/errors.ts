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
