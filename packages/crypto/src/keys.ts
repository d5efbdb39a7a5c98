/**
 * Device keys, as every device registers them with the server's key directory.
 *
 * A device has two independent long-term key pairs (Matrix's split, not Signal's XEdDSA):
 * an X25519 identity key for X3DH and an Ed25519 signing key that signs the device's prekeys.
 * Neither is derived from the other; together they are the device's identity, so the X3DH
 * associated data and the safety number cover both public keys.
 */
import { CryptoError } from './errors.js';
import {
  KEY_LENGTH,
  type KeyPair,
  generateEd25519KeyPair,
  generateX25519KeyPair,
  sign,
  verify,
} from './primitives.js';

export type DeviceKeys = {
  /** X25519: the DH identity key (IK in X3DH). */
  identity: KeyPair;
  /** Ed25519: signs the signed prekey (and nothing else, so no domain confusion). */
  signing: KeyPair;
};

export type PublicDeviceKeys = {
  identityKey: Uint8Array;
  signingKey: Uint8Array;
};

export type SignedPreKey = {
  keyId: number;
  keyPair: KeyPair;
  /** Ed25519 signature by the device signing key over the raw 32-byte X25519 public key. */
  signature: Uint8Array;
  createdAt: number;
};

export type OneTimePreKey = { keyId: number; keyPair: KeyPair };

/** What the server hands out for one device: public halves only. */
export type PreKeyBundle = PublicDeviceKeys & {
  signedPreKey: { keyId: number; publicKey: Uint8Array; signature: Uint8Array };
  /** Absent when the device ran out: X3DH then runs without DH4 (the "last resort" case). */
  oneTimePreKey?: { keyId: number; publicKey: Uint8Array };
};

export function generateDeviceKeys(): DeviceKeys {
  return { identity: generateX25519KeyPair(), signing: generateEd25519KeyPair() };
}

export function publicDeviceKeys(keys: DeviceKeys): PublicDeviceKeys {
  return { identityKey: keys.identity.publicKey, signingKey: keys.signing.publicKey };
}

function assertKeyId(keyId: number): void {
  if (!Number.isInteger(keyId) || keyId < 0 || keyId > 0xffffffff) {
    throw new CryptoError('INVALID_KEY', 'a prekey id is an unsigned 32-bit integer');
  }
}

export function generateSignedPreKey(
  keys: DeviceKeys,
  keyId: number,
  createdAt = Date.now(),
): SignedPreKey {
  assertKeyId(keyId);
  const keyPair = generateX25519KeyPair();
  return { keyId, keyPair, signature: sign(keys.signing.secretKey, keyPair.publicKey), createdAt };
}

/** `count` one-time prekeys with ids `firstKeyId`, `firstKeyId + 1`, ... */
export function generateOneTimePreKeys(firstKeyId: number, count: number): OneTimePreKey[] {
  assertKeyId(firstKeyId);
  assertKeyId(firstKeyId + count);
  return Array.from({ length: count }, (_, i) => ({
    keyId: firstKeyId + i,
    keyPair: generateX25519KeyPair(),
  }));
}

/** The check the server and the initiator both run on a signed prekey. */
export function verifySignedPreKey(
  signingKey: Uint8Array,
  preKeyPublic: Uint8Array,
  signature: Uint8Array,
): boolean {
  return preKeyPublic.length === KEY_LENGTH && verify(signingKey, preKeyPublic, signature);
}

/** The bundle this device publishes (the server adds one one-time prekey per claim). */
export function preKeyBundle(
  keys: DeviceKeys,
  signedPreKey: SignedPreKey,
  oneTimePreKey?: OneTimePreKey,
): PreKeyBundle {
  return {
    ...publicDeviceKeys(keys),
    signedPreKey: {
      keyId: signedPreKey.keyId,
      publicKey: signedPreKey.keyPair.publicKey,
      signature: signedPreKey.signature,
    },
    ...(oneTimePreKey && {
      oneTimePreKey: { keyId: oneTimePreKey.keyId, publicKey: oneTimePreKey.keyPair.publicKey },
    }),
  };
}
