import { createHash, randomBytes, randomInt, timingSafeEqual } from 'node:crypto';
import type { FieldCipher } from './fieldCipher';

/** 256 random bits, base64url: the opaque refresh token handed to the client. */
export function newRefreshToken(): string {
  return randomBytes(32).toString('base64url');
}

/**
 * What the database stores instead of the token. A plain SHA-256 suffices: the input already has
 * 256 bits of entropy, so there is nothing for a slow hash to protect, and being deterministic
 * lets the hash be the lookup key.
 */
export function hashRefreshToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/** A 6-digit one-time code, uniform over 000000..999999 (randomInt avoids modulo bias). */
export function newOtpCode(): string {
  return randomInt(0, 1_000_000).toString().padStart(6, '0');
}

/**
 * Codes have only 20 bits, so a bare hash would be reversed by trying all million, and so would
 * one keyed by the challenge id alone, which is in the challenge's key name: whoever can read
 * the KeyValue store (a shared Redis) had every pending code in under a second. The HMAC is
 * keyed by the server's blind-index key, per challenge (its id in the purpose).
 */
export function hashOtp(cipher: FieldCipher, code: string, challengeId: string): string {
  return cipher.blindIndex(code, `otp:${challengeId}`);
}

const HEX = /^(?:[0-9a-f]{2})+$/i;

/** Constant-time comparison of two hex digests; false on length mismatch, non-hex or empty input. */
export function safeEqualHex(a: string, b: string): boolean {
  if (typeof a !== 'string' || typeof b !== 'string') return false;
  if (a.length !== b.length || !HEX.test(a) || !HEX.test(b)) return false;
  return timingSafeEqual(Buffer.from(a, 'hex'), Buffer.from(b, 'hex'));
}
