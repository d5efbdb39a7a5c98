import { randomBytes } from 'node:crypto';
import type { TDevice, TOtpRequired } from '@mvp/contracts';
import type { Context } from '../../context';
import { AppError } from '../../errors/AppError';
import type { OtpPurpose } from '../../ports';
import { enforceLimit } from '../../rateLimit';
import { hashOtp, newOtpCode, safeEqualHex } from '../../security';

/** What a registration waits with until its phone is verified: no user row exists before. */
export type PendingRegistration = {
  username: string | null;
  passwordHash: string;
  displayName: string;
};

/** Kept in KeyValue for the code's lifetime. The phone is sealed: KeyValue may be a shared Redis. */
export type Challenge = {
  purpose: OtpPurpose;
  sealedPhone: string;
  codeHash: string;
  device: TDevice;
  userId?: string;
  registration?: PendingRegistration;
};

const key = (id: string) => `otp:${id}`;
const triesKey = (id: string) => `otp:${id}:tries`;
const cooldownKey = (id: string) => `otp:${id}:cooldown`;
const sealContext = (id: string) => `otp.phone:${id}`;

/** +49•••••••89: enough for the user to recognise their number, nothing for a shoulder. */
export function maskPhone(e164: string): string {
  return `${e164.slice(0, 3)}${'•'.repeat(Math.max(0, e164.length - 5))}${e164.slice(-2)}`;
}

async function deliver(
  ctx: Context,
  challengeId: string,
  phone: string,
  purpose: OtpPurpose,
): Promise<string> {
  const { otp, limits } = ctx.settings.auth;
  await enforceLimit(ctx, 'otp-send-ip', limits.otpSendIp, ctx.ip);
  // A budget per number and purpose: registering names any number, unauthenticated, so one
  // shared budget let a stranger spend the code the owner's sign-in needs.
  await enforceLimit(
    ctx,
    'otp-send-phone',
    limits.otpSendPhone,
    ctx.ports.cipher.blindIndex(phone, `otp-send:${purpose}`),
  );
  // Last, so that what the budgets above refuse costs it nothing: the whole deployment's. SMS
  // pumping (codes sent through rented addresses to numbers whose owner shares the fee) is
  // limited by no per-address or per-number budget; this caps the bill.
  await enforceLimit(ctx, 'otp-send-all', limits.otpSendAll, 'all');
  const code = newOtpCode();
  await ctx.ports.otpSender.send({ to: phone, code, purpose });
  if (otp.resendSeconds > 0) {
    await ctx.ports.kv.set(cooldownKey(challengeId), '1', { ttlMs: otp.resendSeconds * 1000 });
  }
  return hashOtp(ctx.ports.cipher, code, challengeId);
}

function describe(ctx: Context, challengeId: string, phone: string): TOtpRequired {
  const now = ctx.ports.clock.now();
  const { ttlSeconds, resendSeconds } = ctx.settings.auth.otp;
  return {
    status: 'otp_required',
    challengeId,
    sentTo: maskPhone(phone),
    expiresAt: new Date(now + ttlSeconds * 1000).toISOString(),
    resendAfter: new Date(now + resendSeconds * 1000).toISOString(),
  };
}

export async function openChallenge(
  ctx: Context,
  input: {
    purpose: OtpPurpose;
    phone: string;
    device: TDevice;
    userId?: string;
    registration?: PendingRegistration;
  },
): Promise<TOtpRequired> {
  const challengeId = randomBytes(24).toString('base64url');
  const codeHash = await deliver(ctx, challengeId, input.phone, input.purpose);
  const challenge: Challenge = {
    purpose: input.purpose,
    sealedPhone: ctx.ports.cipher.encrypt(input.phone, sealContext(challengeId)),
    codeHash,
    device: input.device,
    userId: input.userId,
    registration: input.registration,
  };
  await ctx.ports.kv.set(key(challengeId), JSON.stringify(challenge), {
    ttlMs: ctx.settings.auth.otp.ttlSeconds * 1000,
  });
  return describe(ctx, challengeId, input.phone);
}

async function load(ctx: Context, challengeId: string): Promise<Challenge> {
  const raw = await ctx.ports.kv.get(key(challengeId));
  if (!raw) throw new AppError('NOT_FOUND', 'The code expired; start again');
  return JSON.parse(raw) as Challenge;
}

/** Sends a fresh code for the same challenge, once the cooldown has passed. */
export async function resendChallenge(
  ctx: Context,
  challengeId: string,
): Promise<{ resendAfter: string }> {
  const { kv } = ctx.ports;
  const challenge = await load(ctx, challengeId);
  const { resendSeconds } = ctx.settings.auth.otp;
  // The cooldown claimed before the send, not only set after it: two resends at once each
  // found none and both texted a code.
  const claimed =
    resendSeconds === 0 ||
    (await kv.set(cooldownKey(challengeId), '1', {
      ttlMs: resendSeconds * 1000,
      ifNotExists: true,
    }));
  if (!claimed) {
    const wait = (await kv.ttlMs(cooldownKey(challengeId))) ?? resendSeconds * 1000;
    throw new AppError('TOO_MANY_REQUESTS', 'Wait before asking for another code', {
      retryAfterMs: wait,
    });
  }
  const phone = ctx.ports.cipher.decrypt(challenge.sealedPhone, sealContext(challengeId));
  try {
    challenge.codeHash = await deliver(ctx, challengeId, phone, challenge.purpose);
  } catch (err) {
    await kv.del(cooldownKey(challengeId)); // nothing went out: asking again may
    throw err;
  }
  // Only while it still exists, for what is left of its time: a verify that used it, or spent
  // its last try, deleted it meanwhile, and written back it came alive again with a new code
  // and a fresh count of tries.
  const ttl = await kv.ttlMs(key(challengeId));
  const kept =
    ttl !== null &&
    ttl > 0 &&
    (await kv.set(key(challengeId), JSON.stringify(challenge), { ttlMs: ttl, ifExists: true }));
  if (!kept) throw new AppError('NOT_FOUND', 'The code expired; start again');
  return { resendAfter: describe(ctx, challengeId, phone).resendAfter };
}

/**
 * Checks a code. Every try counts (atomically, across instances); after the last allowed try
 * the challenge is deleted, so the code is dead even if the next guess would be right.
 */
export async function consumeChallenge(
  ctx: Context,
  challengeId: string,
  code: string,
): Promise<Challenge & { phone: string }> {
  await enforceLimit(ctx, 'otp-verify-ip', ctx.settings.auth.limits.otpVerifyIp, ctx.ip);
  const challenge = await load(ctx, challengeId);
  const { maxAttempts, ttlSeconds } = ctx.settings.auth.otp;
  const tries = await ctx.ports.kv.incr(triesKey(challengeId), { ttlMs: ttlSeconds * 1000 });
  if (tries > maxAttempts) {
    await ctx.ports.kv.del(key(challengeId));
    throw new AppError('TOO_MANY_REQUESTS', 'Too many wrong codes; start again', {
      retryAfterMs: 0,
    });
  }
  if (!safeEqualHex(hashOtp(ctx.ports.cipher, code, challengeId), challenge.codeHash)) {
    if (tries >= maxAttempts) await ctx.ports.kv.del(key(challengeId));
    throw new AppError('UNAUTHORIZED', 'Wrong code');
  }
  // Single use, also against itself: of concurrent verifies with the right code only the one
  // whose delete removed the challenge goes on (one stolen code, one session).
  if (!(await ctx.ports.kv.del(key(challengeId))))
    throw new AppError('NOT_FOUND', 'This code was used or has expired');
  const phone = ctx.ports.cipher.decrypt(challenge.sealedPhone, sealContext(challengeId));
  return { ...challenge, phone };
}
