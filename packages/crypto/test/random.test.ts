import { afterEach, describe, expect, it, vi } from 'vitest';
import { CryptoError, createSenderKey, generateDeviceKeys, randomBytes } from '../src/index.js';

describe('randomness', () => {
  afterEach(() => {
    vi.unstubAllGlobals();
  });

  it('draws from crypto.getRandomValues, also above the 64 KiB per-call quota', () => {
    const spy = vi.spyOn(globalThis.crypto, 'getRandomValues');
    const bytes = randomBytes(100_000);
    expect(bytes).toHaveLength(100_000);
    expect(spy).toHaveBeenCalledTimes(2);
    expect(bytes.some((b) => b !== 0)).toBe(true);
    spy.mockRestore();
  });

  it('throws the typed error, never falls back, when getRandomValues is missing', () => {
    for (const replacement of [undefined, {}]) {
      vi.stubGlobal('crypto', replacement);
      for (const fn of [() => randomBytes(32), generateDeviceKeys, () => createSenderKey()]) {
        try {
          fn();
          expect.unreachable();
        } catch (error) {
          expect(error).toBeInstanceOf(CryptoError);
          expect((error as CryptoError).code).toBe('NO_SECURE_RANDOM');
        }
      }
      vi.unstubAllGlobals();
    }
  });
});
