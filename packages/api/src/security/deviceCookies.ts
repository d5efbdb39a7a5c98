import { randomBytes } from 'node:crypto';
import type { FieldCipher } from './fieldCipher';
import { safeEqualHex } from './refreshTokens';

/**
 * Device cookies (OWASP's "slow down online guessing attacks with device cookies"): every
 * sign-in answer carries one, bound to the account; the client keeps it past sign-out and shows
 * it at its next sign-in. With a valid cookie for the account, a login is counted against that
 * cookie's own budget instead of the identifier's. Strangers who spend the identifier's budget
 * (which anyone can, knowing a username) then lock out only devices that never signed in there.
 *
 * Stateless: `<expiry unix seconds>.<nonce>.<HMAC-SHA256 of userId, expiry, nonce and the
 * account's password hash>`, the MAC made with the blind-index key under its own purpose, so no
 * new secret has to be configured. What it grants is only a separate budget of attempts, never a
 * session; and it ends with the password it was issued under: a thief who kept cookies (every
 * refresh answer carries one) guesses no longer at a new password than anyone else (a stronger
 * rehash at login ends them too, once). All of an account's cookies share one budget besides
 * their own (auth.service.ts), so many of them are worth no more than one identifier.
 */
export const DEVICE_COOKIE_TTL_MS = 180 * 24 * 3600 * 1000;
const PURPOSE = 'device-cookie';
const FORMAT = /^(\d{1,12})\.([A-Za-z0-9_-]{22})\.([0-9a-f]{64})$/;

/** The account a cookie is for: its id, and its password hash now (null: none set). */
export type CookieAccount = { id: string; password_hash: string | null };

const mac = (cipher: FieldCipher, account: CookieAccount, expiry: string, nonce: string) =>
  cipher.blindIndex(`${account.id}.${expiry}.${nonce}.${account.password_hash ?? ''}`, PURPOSE);

export function issueDeviceCookie(
  cipher: FieldCipher,
  account: CookieAccount,
  nowMs: number,
): string {
  const expiry = String(Math.floor((nowMs + DEVICE_COOKIE_TTL_MS) / 1000));
  const nonce = randomBytes(16).toString('base64url');
  return `${expiry}.${nonce}.${mac(cipher, account, expiry, nonce)}`;
}

/**
 * The nonce of the first of `cookies` that is valid for `account` now (the key of its budget),
 * or null. Cookies of other accounts, of its earlier passwords, expired or forged ones are simply
 * not trusted.
 */
export function trustedDeviceCookie(
  cipher: FieldCipher,
  account: CookieAccount,
  cookies: readonly string[],
  nowMs: number,
): string | null {
  for (const cookie of cookies) {
    const parts = FORMAT.exec(cookie);
    if (!parts) continue;
    const [, expiry, nonce, tag] = parts as unknown as [string, string, string, string];
    if (Number(expiry) * 1000 <= nowMs) continue;
    if (safeEqualHex(tag, mac(cipher, account, expiry, nonce))) return nonce;
  }
  return null;
}
