import { TRPCError } from '@trpc/server';
import { APP_ERROR_TRANSPORT, type TAppErrorCode, type TDeviceMismatch } from '@mvp/contracts';

export type AppErrorOptions = {
  cause?: unknown;
  /** For TOO_MANY_REQUESTS: how long the caller should wait before trying again. */
  retryAfterMs?: number;
  /** For DEVICES_CHANGED: which devices the caller must add or drop. */
  devices?: TDeviceMismatch;
};

/**
 * The one error services throw. It is a TRPCError so both transports and the REST shim carry it
 * unchanged; the formatter adds `appCode` and `retryAfterMs` to `error.data`.
 */
export class AppError extends TRPCError {
  readonly appCode: TAppErrorCode;
  readonly retryAfterMs: number | undefined;
  readonly devices: TDeviceMismatch | undefined;

  constructor(appCode: TAppErrorCode, message?: string, options: AppErrorOptions = {}) {
    super({
      code: APP_ERROR_TRANSPORT[appCode],
      message: message ?? appCode,
      cause: options.cause,
    });
    // `name` stays 'TRPCError': trpc-to-openapi recognises errors by name, not instanceof.
    this.appCode = appCode;
    this.retryAfterMs = options.retryAfterMs;
    this.devices = options.devices;
  }
}
