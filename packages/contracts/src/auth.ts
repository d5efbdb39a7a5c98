import { parsePhoneNumberFromString } from 'libphonenumber-js/max';
import { z } from 'zod';

/** Public handle: stored and compared in lower case, so uniqueness is case-insensitive. */
export const ZUsername = z
  .string()
  .trim()
  .toLowerCase()
  .regex(/^[a-z0-9_]{3,32}$/, 'use 3–32 characters: a–z, 0–9 and _');

/**
 * Number types no code is texted to: a text to them bills the sender extra, and shares the fee
 * with the number's holder (SMS pumping), or reaches no phone of anyone's own.
 */
const NOT_TEXTED = new Set(['PREMIUM_RATE', 'SHARED_COST', 'UAN', 'VOICEMAIL', 'PAGER']);

/**
 * Any common notation in, E.164 out; only numbers libphonenumber-js considers valid, and not
 * premium-rate, shared-cost and the like (NOT_TEXTED).
 */
export const ZPhone = z
  .string()
  .trim()
  .max(32)
  .transform((raw, ctx) => {
    const parsed = parsePhoneNumberFromString(raw);
    if (!parsed?.isValid()) {
      ctx.addIssue({ code: 'custom', message: 'not a valid phone number in international format' });
      return z.NEVER;
    }
    const type = parsed.getType();
    if (type && NOT_TEXTED.has(type)) {
      ctx.addIssue({ code: 'custom', message: 'not a number codes can be texted to' });
      return z.NEVER;
    }
    return parsed.number;
  });

/** 8–128 characters counted as code points; no composition rules (NIST 800-63B, ASVS 2.1). */
export const ZPassword = z
  .string()
  .max(512)
  .refine((p) => [...p].length >= 8, 'use at least 8 characters')
  .refine((p) => [...p].length <= 128, 'use at most 128 characters');

export const ZDisplayName = z.string().trim().min(1).max(64);
export const ZUniqueId = z.string().regex(/^\d{8}$/);
/**
 * Ids are lower case, as the server makes them. MySQL compares strings ignoring case, so an id
 * in capitals would find the same row there while every comparison and limit key in the code
 * (and SQLite) took it for another: refused at the edge instead.
 */
export const ZId = z.stringFormat(
  'uuid',
  /^[0-9a-f]{8}-[0-9a-f]{4}-[1-8][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
  { error: 'not a lower-case UUID' },
);

export const DEVICE_PLATFORMS = ['web', 'ios', 'android', 'desktop', 'node', 'other'] as const;
export const ZDevice = z.object({
  name: z.string().trim().min(1).max(64),
  platform: z.enum(DEVICE_PLATFORMS),
});
export type TDevice = z.infer<typeof ZDevice>;

export const ZRegisterInput = z
  .object({
    username: ZUsername.optional(),
    phone: ZPhone.optional(),
    password: ZPassword,
    displayName: ZDisplayName,
    device: ZDevice,
  })
  .refine((v) => v.username !== undefined || v.phone !== undefined, {
    message: 'give a username, a phone number, or both',
    path: ['username'],
  });
export type TRegisterInput = z.input<typeof ZRegisterInput>;

export const ZAuthUser = z.object({
  id: z.string(),
  uniqueId: ZUniqueId,
  username: z.string().nullable(),
});

/**
 * A device cookie as sign-in answers carry it: keep it past sign-out and show it at the next
 * login to that account from this device (`deviceCookies`), so strangers failing on the
 * identifier cannot lock this device out. It grants nothing else.
 */
export const ZDeviceCookie = z.string().regex(/^\d{1,12}\.[A-Za-z0-9_-]{22}\.[0-9a-f]{64}$/);

export const ZAuthTokens = z.object({
  status: z.literal('ok'),
  accessToken: z.string(),
  refreshToken: z.string(),
  /** When the access token expires; refresh before. */
  expiresAt: z.iso.datetime(),
  sessionId: z.string(),
  user: ZAuthUser,
  deviceCookie: ZDeviceCookie,
});
export type TAuthTokens = z.infer<typeof ZAuthTokens>;

export const ZOtpRequired = z.object({
  status: z.literal('otp_required'),
  challengeId: z.string(),
  /** The phone the code went to, masked (e.g. +49•••••••89). */
  sentTo: z.string(),
  expiresAt: z.iso.datetime(),
  resendAfter: z.iso.datetime(),
});
export type TOtpRequired = z.infer<typeof ZOtpRequired>;

export const ZAuthResult = z.discriminatedUnion('status', [ZAuthTokens, ZOtpRequired]);
export type TAuthResult = z.infer<typeof ZAuthResult>;

export const ZChallengeId = z.string().regex(/^[A-Za-z0-9_-]{20,64}$/);

export const ZOtpSendInput = z.object({ challengeId: ZChallengeId });
export const ZOtpSendOutput = z.object({
  status: z.literal('sent'),
  resendAfter: z.iso.datetime(),
});

export const ZOtpVerifyInput = z.object({
  challengeId: ZChallengeId,
  code: z.string().regex(/^\d{6}$/, 'the code has 6 digits'),
});

export const ZLoginInput = z.object({
  /** Username, phone number or 8-digit unique id. */
  identifier: z.string().trim().min(1).max(64),
  password: z.string().min(1).max(512),
  device: ZDevice,
  /** The device cookies this device kept from earlier sign-ins (any accounts), newest first. */
  deviceCookies: z.array(ZDeviceCookie).max(8).optional(),
});
export type TLoginInput = z.input<typeof ZLoginInput>;

export const ZRefreshInput = z.object({ refreshToken: z.string().regex(/^[A-Za-z0-9_-]{40,64}$/) });

export const ZOk = z.object({ ok: z.literal(true) });
