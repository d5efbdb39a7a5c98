import { z } from 'zod';
import { ZId } from './auth';

/** A raw 32-byte public key (X25519 or Ed25519), base64 with padding. */
export const ZPublicKey = z.string().regex(/^[A-Za-z0-9+/]{43}=$/, 'expected 32 bytes, base64');
/** A raw 64-byte Ed25519 signature, base64 with padding. */
export const ZSignature = z.string().regex(/^[A-Za-z0-9+/]{86}==$/, 'expected 64 bytes, base64');
export const ZKeyId = z
  .number()
  .int()
  .min(0)
  .max(2 ** 31 - 1);

/**
 * The device's medium-term X25519 prekey, signed by the device's Ed25519 signing key over the
 * 32 raw bytes of `publicKey` (the server checks it; so do peers, in X3DH).
 */
export const ZSignedPrekey = z.object({
  keyId: ZKeyId,
  publicKey: ZPublicKey,
  signature: ZSignature,
});
export const ZOneTimePrekey = z.object({ keyId: ZKeyId, publicKey: ZPublicKey });

/** At most this many one-time prekeys per upload. */
export const MAX_PREKEYS_PER_UPLOAD = 100;

export const ZPublishKeysInput = z.object({
  identityKey: ZPublicKey,
  signingKey: ZPublicKey,
  signedPrekey: ZSignedPrekey,
  oneTimePrekeys: z.array(ZOneTimePrekey).max(MAX_PREKEYS_PER_UPLOAD).default([]),
});
export const ZUploadPrekeysInput = z
  .object({
    signedPrekey: ZSignedPrekey.optional(),
    oneTimePrekeys: z.array(ZOneTimePrekey).max(MAX_PREKEYS_PER_UPLOAD).default([]),
  })
  .refine((v) => v.signedPrekey || v.oneTimePrekeys.length > 0, { message: 'nothing to upload' });

export const ZDeviceKeys = z.object({
  deviceId: z.string(),
  identityKey: ZPublicKey,
  signingKey: ZPublicKey,
});
export const ZDeviceList = z.object({ userId: z.string(), devices: z.array(ZDeviceKeys) });

export const ZPrekeyBundle = z.object({
  userId: z.string(),
  devices: z.array(
    ZDeviceKeys.extend({
      signedPrekey: ZSignedPrekey,
      /** Null when the device ran out: X3DH then uses the signed prekey alone ("last resort"). */
      oneTimePrekey: ZOneTimePrekey.nullable(),
    }),
  ),
});

export const ZClaimManyInput = z.object({
  users: z
    .array(
      z.object({
        userId: ZId,
        /** Only these devices' one-time prekeys are taken (the others answer without one). */
        deviceIds: z.array(ZId).min(1).max(100).optional(),
      }),
    )
    .min(1)
    .max(100)
    .refine((users) => new Set(users.map((u) => u.userId)).size === users.length, {
      message: 'each user once',
    }),
});

export const ZKeyCount = z.object({
  oneTimePrekeys: z.number().int(),
  signedPrekeyId: ZKeyId,
  /** Top up when `oneTimePrekeys` falls below this; a `keys.low` event says so too. */
  threshold: z.number().int(),
});

export const ZVerifyInput = z.object({
  userId: ZId,
  /** What I compared (the safety number or QR payload), as the app shows it. */
  fingerprint: z.string().min(8).max(128),
  method: z.enum(['qr', 'manual']),
});
export const ZVerification = z.object({
  userId: z.string(),
  fingerprint: z.string(),
  method: z.enum(['qr', 'manual']),
  verifiedAt: z.iso.datetime(),
  /** False once their keys changed after I verified them: compare again. */
  verified: z.boolean(),
});
