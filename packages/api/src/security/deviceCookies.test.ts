import { describe, expect, it } from 'vitest';
import { ZDeviceCookie } from '@mvp/contracts';
import { DEVICE_COOKIE_TTL_MS, issueDeviceCookie, trustedDeviceCookie } from './deviceCookies';
import { createFieldCipher } from './fieldCipher';

const cipher = createFieldCipher({
  dataKeys: [{ id: 'k1', key: new Uint8Array(32).fill(1) }],
  blindIndexKey: new Uint8Array(32).fill(9),
});
const NOW = Date.parse('2026-11-25T12:00:00Z');
const u1 = { id: 'u1', password_hash: '$argon2id$one' };
const u2 = { id: 'u2', password_hash: '$argon2id$two' };

describe('device cookies', () => {
  it('are trusted for their account until they expire, and have the shape the edge checks', () => {
    const cookie = issueDeviceCookie(cipher, u1, NOW);
    expect(ZDeviceCookie.safeParse(cookie).success).toBe(true);
    const nonce = cookie.split('.')[1];
    expect(trustedDeviceCookie(cipher, u1, [cookie], NOW)).toBe(nonce);
    expect(trustedDeviceCookie(cipher, u1, [cookie], NOW + DEVICE_COOKIE_TTL_MS - 1000)).toBe(
      nonce,
    );
    expect(trustedDeviceCookie(cipher, u1, [cookie], NOW + DEVICE_COOKIE_TTL_MS)).toBeNull();
  });

  it('are not trusted for another account, under another key, or altered in any part', () => {
    const cookie = issueDeviceCookie(cipher, u1, NOW);
    expect(trustedDeviceCookie(cipher, u2, [cookie], NOW)).toBeNull();
    const otherKey = createFieldCipher({
      dataKeys: [{ id: 'k1', key: new Uint8Array(32).fill(1) }],
      blindIndexKey: new Uint8Array(32).fill(8),
    });
    expect(trustedDeviceCookie(otherKey, u1, [cookie], NOW)).toBeNull();
    for (let i = 0; i < cookie.length; i++) {
      if (cookie[i] === '.') continue;
      const altered = cookie.slice(0, i) + (cookie[i] === 'a' ? 'b' : 'a') + cookie.slice(i + 1);
      expect(trustedDeviceCookie(cipher, u1, [altered], NOW), `position ${i}`).toBeNull();
    }
    expect(trustedDeviceCookie(cipher, u1, ['', 'x.y.z', `${cookie}.`], NOW)).toBeNull();
  });

  it('end with the password they were issued under', () => {
    const cookie = issueDeviceCookie(cipher, u1, NOW);
    const changed = { ...u1, password_hash: '$argon2id$new' };
    expect(trustedDeviceCookie(cipher, changed, [cookie], NOW)).toBeNull();
    expect(trustedDeviceCookie(cipher, { ...u1, password_hash: null }, [cookie], NOW)).toBeNull();
    const fresh = issueDeviceCookie(cipher, changed, NOW);
    expect(trustedDeviceCookie(cipher, changed, [cookie, fresh], NOW)).toBe(fresh.split('.')[1]);
  });

  it('the first trusted one of several is used', () => {
    const mine = issueDeviceCookie(cipher, u1, NOW);
    const theirs = issueDeviceCookie(cipher, u2, NOW);
    const newer = issueDeviceCookie(cipher, u1, NOW + 1000);
    expect(trustedDeviceCookie(cipher, u1, [theirs, mine, newer], NOW)).toBe(mine.split('.')[1]);
    expect(mine).not.toBe(newer);
  });
});
