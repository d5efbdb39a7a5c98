import { z } from 'zod';

/**
 * Every failure the API reports carries one of these codes in `error.data.appCode`, so the SDK and
 * REST integrators can switch on a stable value. Later domains add their own specific codes here
 * (each mapped to one transport status below); the transport code alone is too coarse for clients.
 */
export const APP_ERROR_CODES = [
  'BAD_REQUEST',
  'UNAUTHORIZED',
  'FORBIDDEN',
  'NOT_FOUND',
  'CONFLICT',
  'PAYLOAD_TOO_LARGE',
  /** An upload that is not one of the accepted formats (avatars: PNG, JPEG, WebP). */
  'UNSUPPORTED_MEDIA_TYPE',
  'TOO_MANY_REQUESTS',
  /**
   * Envelopes meant for all of a user's devices named the wrong set: `data.devices` lists the
   * missing and the stale ones (Signal's 409/410); refresh the device list and retry.
   */
  'DEVICES_CHANGED',
  'SERVICE_UNAVAILABLE',
  'INTERNAL_SERVER_ERROR',
] as const;
// A plain union (not z.infer) so the SDK's bundled types carry no zod.
export type TAppErrorCode = (typeof APP_ERROR_CODES)[number];
export const ZAppErrorCode = z.enum(APP_ERROR_CODES);

/** The tRPC error code (and so the HTTP status) each application code travels as. */
export const APP_ERROR_TRANSPORT = {
  BAD_REQUEST: 'BAD_REQUEST',
  UNAUTHORIZED: 'UNAUTHORIZED',
  FORBIDDEN: 'FORBIDDEN',
  NOT_FOUND: 'NOT_FOUND',
  CONFLICT: 'CONFLICT',
  PAYLOAD_TOO_LARGE: 'PAYLOAD_TOO_LARGE',
  UNSUPPORTED_MEDIA_TYPE: 'UNSUPPORTED_MEDIA_TYPE',
  TOO_MANY_REQUESTS: 'TOO_MANY_REQUESTS',
  DEVICES_CHANGED: 'CONFLICT',
  SERVICE_UNAVAILABLE: 'SERVICE_UNAVAILABLE',
  INTERNAL_SERVER_ERROR: 'INTERNAL_SERVER_ERROR',
} as const satisfies Record<TAppErrorCode, string>;

/** One field problem of a BAD_REQUEST, flattened from zod so clients need not know zod. */
export type TFieldIssue = { path: string; message: string; code: string };

/** What `error.data` holds on every error, over both transports and the REST shim. */
export type TErrorData = {
  code: string;
  httpStatus: number;
  appCode: TAppErrorCode;
  requestId?: string;
  issues?: TFieldIssue[];
  retryAfterMs?: number;
  /** With DEVICES_CHANGED: devices to add to the send, and devices that no longer exist. */
  devices?: TDeviceMismatch;
};

export type TDeviceRef = { userId: string; deviceId: string };
export type TDeviceMismatch = { missing: TDeviceRef[]; stale: TDeviceRef[] };
