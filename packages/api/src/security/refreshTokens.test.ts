import { createFieldCipher } from './fieldCipher';
import { createHash, createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  hashOtp,
  hashRefreshToken,
  newOtpCode,
  newRefreshToken,
  safeEqualHex,
} from './refreshTokens';

describe('refresh tokens', () => {
  it('are 256 random bits in base64url, and unique', () => {
    const tokens = new Set(Array.from({ length: 200 }, newRefreshToken));
    expect(tokens.size).toBe(200);
    for (const t of tokens) {
      expect(t).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(Buffer.from(t, 'base64url')).toHaveLength(32);
    }
  });

  it('hash to deterministic SHA-256 hex that does not contain the token', () => {
    const t = newRefreshToken();
    const h = hashRefreshToken(t);
    expect(h).toMatch(/^[0-9a-f]{64}$/);
    expect(h).toBe(hashRefreshToken(t));
    expect(h).toBe(createHash('sha256').update(t).digest('hex'));
    expect(h).not.toContain(t);
    expect(hashRefreshToken(newRefreshToken())).not.toBe(h);
  });
});

describe('OTP codes', () => {
  it('are six digits, leading zeros kept, and spread over the whole range', () => {
    const codes = Array.from({ length: 2000 }, newOtpCode);
    for (const c of codes) expect(c).toMatch(/^\d{6}$/);
    // Each first digit should appear ~200 times; all ten missing one would mean a biased source.
    const firstDigits = new Set(codes.map((c) => c[0]));
    expect(firstDigits.size).toBe(10);
    expect(new Set(codes).size).toBeGreaterThan(1900);
  });

  it('hash with an HMAC under the server key, per challenge: the challenge id alone finds nothing', () => {
    const cipher = createFieldCipher({
      dataKeys: [{ id: 'k1', key: new Uint8Array(32).fill(1) }],
      blindIndexKey: new Uint8Array(32).fill(9),
    });
    const h = hashOtp(cipher, '123456', 'challenge-1');
    expect(h).toMatch(/^[0-9a-f]{64}$/);
    // What a reader of the store could try: the million codes keyed by the id in the key name.
    expect(h).not.toBe(createHmac('sha256', 'challenge-1').update('123456').digest('hex'));
    expect(hashOtp(cipher, '123456', 'challenge-2')).not.toBe(h);
    expect(hashOtp(cipher, '123457', 'challenge-1')).not.toBe(h);
    expect(safeEqualHex(hashOtp(cipher, '123456', 'challenge-1'), h)).toBe(true);
  });
});

describe('safeEqualHex', () => {
  const h = hashRefreshToken('x');

  it('compares equal digests as equal, case-insensitively', () => {
    expect(safeEqualHex(h, h)).toBe(true);
    expect(safeEqualHex(h, h.toUpperCase())).toBe(true);
  });

  it('is false for different digests, different lengths, non-hex and empty input', () => {
    const flipped = (h[0] === 'a' ? 'b' : 'a') + h.slice(1);
    expect(safeEqualHex(h, flipped)).toBe(false);
    expect(safeEqualHex(h, h.slice(0, -2))).toBe(false);
    expect(safeEqualHex(h, `${h}00`)).toBe(false);
    expect(safeEqualHex('', '')).toBe(false);
    expect(safeEqualHex('abc', 'abc')).toBe(false); // odd length
    // Buffer.from(…, 'hex') would stop at the first bad character and make these "equal".
    expect(safeEqualHex('zz', 'zz')).toBe(false);
    expect(safeEqualHex('aazz', 'aayy')).toBe(false);
    expect(safeEqualHex(h, null as unknown as string)).toBe(false);
  });
});
