import { describe, expect, it } from 'vitest';
import {
  compareSafetyNumberQr,
  generateDeviceKeys,
  isCryptoError,
  publicDeviceKeys,
  safetyNumber,
  safetyNumberQrPayload,
} from '../src/index.js';

const alice = { stableId: 'user-alice', keys: publicDeviceKeys(generateDeviceKeys()) };
const bob = { stableId: 'user-bob', keys: publicDeviceKeys(generateDeviceKeys()) };

describe('safety numbers', () => {
  it('60 digits, equal on both sides', () => {
    const onAlice = safetyNumber(alice, bob);
    const onBob = safetyNumber(bob, alice);
    expect(onAlice).toMatch(/^\d{60}$/);
    expect(onBob).toBe(onAlice);
  });

  it('differ when either identity key, signing key or identifier differs', () => {
    const base = safetyNumber(alice, bob);
    const otherDevice = { ...bob, keys: publicDeviceKeys(generateDeviceKeys()) };
    const otherSigning = {
      ...bob,
      keys: { ...bob.keys, signingKey: generateDeviceKeys().signing.publicKey },
    };
    const otherId = { ...bob, stableId: 'user-mallory' };
    for (const remote of [otherDevice, otherSigning, otherId]) {
      const number = safetyNumber(alice, remote);
      expect(number).not.toBe(base);
      // Alice's half stays the same: only the changed side's 30 digits move.
      const aliceHalf = safetyNumber(alice, alice).slice(0, 30);
      expect(number.includes(aliceHalf)).toBe(true);
    }
  });

  it('QR payloads are versioned, equal on both sides, and differ for other keys', () => {
    const onAlice = safetyNumberQrPayload(alice, bob);
    const onBob = safetyNumberQrPayload(bob, alice);
    expect(onAlice).toHaveLength(65);
    expect(onAlice[0]).toBe(1);
    expect(compareSafetyNumberQr(onAlice, onBob)).toBe(true);
    const mitm = safetyNumberQrPayload(alice, {
      ...bob,
      keys: publicDeviceKeys(generateDeviceKeys()),
    });
    expect(compareSafetyNumberQr(onAlice, mitm)).toBe(false);
    const future = onBob.slice();
    future[0] = 2;
    try {
      compareSafetyNumberQr(onAlice, future);
      expect.unreachable();
    } catch (error) {
      expect(isCryptoError(error, 'UNKNOWN_VERSION')).toBe(true);
    }
  });
});
