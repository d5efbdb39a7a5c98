import { getHTTPStatusCodeFromError } from '@trpc/server/http';
import type { TRPCError } from '@trpc/server';
import type { DefaultErrorShape } from '@trpc/server/unstable-core-do-not-import';
import { ZodError } from 'zod';
import type { TAppErrorCode, TErrorData, TFieldIssue } from '@mvp/contracts';
import { AppError } from './AppError';

/** tRPC's own codes (parse errors, unknown paths, oversize bodies) mapped onto ours. */
const FROM_TRANSPORT: Partial<Record<TRPCError['code'], TAppErrorCode>> = {
  PARSE_ERROR: 'BAD_REQUEST',
  BAD_REQUEST: 'BAD_REQUEST',
  METHOD_NOT_SUPPORTED: 'BAD_REQUEST',
  UNSUPPORTED_MEDIA_TYPE: 'BAD_REQUEST',
  UNPROCESSABLE_CONTENT: 'BAD_REQUEST',
  UNAUTHORIZED: 'UNAUTHORIZED',
  FORBIDDEN: 'FORBIDDEN',
  NOT_FOUND: 'NOT_FOUND',
  CONFLICT: 'CONFLICT',
  PAYLOAD_TOO_LARGE: 'PAYLOAD_TOO_LARGE',
  TOO_MANY_REQUESTS: 'TOO_MANY_REQUESTS',
  SERVICE_UNAVAILABLE: 'SERVICE_UNAVAILABLE',
};

export function appCodeOf(error: TRPCError): TAppErrorCode {
  if (error instanceof AppError) return error.appCode;
  return FROM_TRANSPORT[error.code] ?? 'INTERNAL_SERVER_ERROR';
}

export function fieldIssuesOf(error: TRPCError): TFieldIssue[] | undefined {
  if (!(error.cause instanceof ZodError)) return undefined;
  return error.cause.issues.map((issue) => ({
    path: issue.path.map(String).join('.'),
    message: issue.message,
    code: issue.code,
  }));
}

/** A short human message instead of zod's multi-line JSON dump. */
function describeIssues(issues: TFieldIssue[]): string {
  const parts = issues.slice(0, 5).map((i) => (i.path ? `${i.path}: ${i.message}` : i.message));
  return `Invalid input: ${parts.join('; ')}${issues.length > 5 ? '; …' : ''}`;
}

export type ErrorShape = Omit<DefaultErrorShape, 'data'> & { data: TErrorData };

type FormatterInput = {
  shape: DefaultErrorShape;
  error: TRPCError;
  ctx: { requestId?: string } | undefined;
};

/**
 * The single place errors become responses. Never a stack trace, and never the text of an
 * unexpected error: that goes to the log, the client gets a generic message and the request id.
 */
export function errorFormatter({ shape, error, ctx }: FormatterInput): ErrorShape {
  const appCode = appCodeOf(error);
  const issues = appCode === 'BAD_REQUEST' ? fieldIssuesOf(error) : undefined;
  const retryAfterMs = error instanceof AppError ? error.retryAfterMs : undefined;
  const devices = error instanceof AppError ? error.devices : undefined;
  let message = shape.message;
  if (appCode === 'INTERNAL_SERVER_ERROR') message = 'Internal server error';
  else if (issues) message = describeIssues(issues);
  const data: TErrorData = {
    code: shape.data.code,
    httpStatus: getHTTPStatusCodeFromError(error),
    appCode,
    ...(ctx?.requestId ? { requestId: ctx.requestId } : {}),
    ...(issues ? { issues } : {}),
    ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
    ...(devices ? { devices } : {}),
  };
  return { code: shape.code, message, data };
}
