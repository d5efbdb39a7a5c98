import { z } from 'zod';

/**
 * Opaque bytes travel as base64 strings on both surfaces (tRPC and the REST shim), so one schema
 * serves both; the SDK hands apps Uint8Array. The configured size limit is checked by the server
 * on the decoded bytes; this cap only stops absurd strings before they are decoded.
 */
export const ZBase64 = z
  .string()
  .max(1_400_000)
  .regex(/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/, 'expected base64');
