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

/**
 * Bytes a client sends: at least one, and in the one spelling they are answered in (the bits a
 * padded last character leaves over are zero), so the string sent is the string answered: "QR=="
 * decoded to the same byte as "QQ==", was stored and came back as "QQ==". Answers keep ZBase64,
 * which rows stored before this check still match.
 */
export const ZBase64Input = z
  .string()
  .min(1, 'no bytes')
  .max(1_400_000)
  .regex(
    /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/][AQgw]==|[A-Za-z0-9+/]{2}[AEIMQUYcgkosw048]=)?$/,
    'expected base64 (canonical)',
  );
