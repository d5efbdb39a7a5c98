/**
 * X3DH (https://signal.org/docs/specifications/x3dh/) with curve X25519, hash SHA-256 and
 * info "MVP X3DH v1". SK = HKDF(salt = 32 zero bytes, IKM = 32 0xFF bytes || DH1 || DH2 || DH3
 * [|| DH4]), 32 bytes. DH1 = DH(IK_A, SPK_B), DH2 = DH(EK_A, IK_B), DH3 = DH(EK_A, SPK_B),
 * DH4 = DH(EK_A, OPK_B) when a one-time prekey was claimed.
 *
 * AD = IK_A || SIG_A || IK_B || SIG_B: both devices' X25519 identity keys and Ed25519 signing
 * keys, initiator first, so neither half of either identity can be swapped unnoticed.
 */
import { asciiBytes, concatBytes } from './bytes.js';
import { CryptoError } from './errors.js';
import {
  type DeviceKeys,
  type PreKeyBundle,
  type PublicDeviceKeys,
  verifySignedPreKey,
} from './keys.js';
import { type KeyPair, dh, generateX25519KeyPair, hkdf } from './primitives.js';

const INFO = asciiBytes('MVP X3DH v1');
const F = new Uint8Array(32).fill(0xff);
const ZERO_SALT = new Uint8Array(32);

function kdf(...dhOutputs: Uint8Array[]): Uint8Array {
  return hkdf(concatBytes(F, ...dhOutputs), ZERO_SALT, INFO, 32);
}

export function x3dhAssociatedData(
  initiator: PublicDeviceKeys,
  responder: PublicDeviceKeys,
): Uint8Array {
  return concatBytes(
    initiator.identityKey,
    initiator.signingKey,
    responder.identityKey,
    responder.signingKey,
  );
}

export type X3dhInitiation = {
  sharedKey: Uint8Array;
  associatedData: Uint8Array;
  /** EK_A's public half, sent in the first message; also names the session. */
  baseKey: Uint8Array;
  signedPreKeyId: number;
  oneTimePreKeyId: number | undefined;
};

/** Alice's side. Refuses a bundle whose signed prekey does not verify (BAD_SIGNATURE). */
export function x3dhInitiate(local: DeviceKeys, bundle: PreKeyBundle): X3dhInitiation {
  const { signedPreKey, oneTimePreKey } = bundle;
  if (!verifySignedPreKey(bundle.signingKey, signedPreKey.publicKey, signedPreKey.signature)) {
    throw new CryptoError('BAD_SIGNATURE', 'the signed prekey signature does not verify');
  }
  const ephemeral = generateX25519KeyPair();
  const outputs = [
    dh(local.identity.secretKey, signedPreKey.publicKey),
    dh(ephemeral.secretKey, bundle.identityKey),
    dh(ephemeral.secretKey, signedPreKey.publicKey),
  ];
  if (oneTimePreKey) outputs.push(dh(ephemeral.secretKey, oneTimePreKey.publicKey));
  const sharedKey = kdf(...outputs);
  ephemeral.secretKey.fill(0);
  return {
    sharedKey,
    associatedData: x3dhAssociatedData(
      { identityKey: local.identity.publicKey, signingKey: local.signing.publicKey },
      bundle,
    ),
    baseKey: ephemeral.publicKey,
    signedPreKeyId: signedPreKey.keyId,
    oneTimePreKeyId: oneTimePreKey?.keyId,
  };
}

/** Bob's side, given the prekeys the initial message names (the caller looks them up). */
export function x3dhRespond(
  local: DeviceKeys,
  signedPreKey: KeyPair,
  oneTimePreKey: KeyPair | undefined,
  remote: PublicDeviceKeys,
  baseKey: Uint8Array,
): { sharedKey: Uint8Array; associatedData: Uint8Array } {
  const outputs = [
    dh(signedPreKey.secretKey, remote.identityKey),
    dh(local.identity.secretKey, baseKey),
    dh(signedPreKey.secretKey, baseKey),
  ];
  if (oneTimePreKey) outputs.push(dh(oneTimePreKey.secretKey, baseKey));
  return {
    sharedKey: kdf(...outputs),
    associatedData: x3dhAssociatedData(remote, {
      identityKey: local.identity.publicKey,
      signingKey: local.signing.publicKey,
    }),
  };
}
