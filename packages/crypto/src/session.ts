/**
 * A pairwise session between two devices: X3DH to start, the Double Ratchet after.
 *
 * Until the initiator has decrypted a reply, everything it sends is a PreKeyMessage that carries
 * the X3DH fields, so the responder can build the session from whichever message arrives first:
 *   version | type 2 | IK_A | SIG_A | EK_A | signed prekey id (u32) | has one-time (u8) |
 *   one-time prekey id (u32) | ratchet message
 */
import { equalBytes, reader, writer } from './bytes.js';
import { CryptoError } from './errors.js';
import {
  type DeviceKeys,
  type PreKeyBundle,
  type PublicDeviceKeys,
  publicDeviceKeys,
} from './keys.js';
import { KEY_LENGTH, type KeyPair } from './primitives.js';
import {
  DEFAULT_RATCHET_LIMITS,
  type RatchetLimits,
  type RatchetState,
  initInitiator,
  initResponder,
  ratchetDecrypt,
  ratchetEncrypt,
} from './ratchet.js';
import { WIRE_VERSION, WireType } from './wire.js';
import { x3dhInitiate, x3dhRespond } from './x3dh.js';

export type PendingPreKey = {
  local: PublicDeviceKeys;
  baseKey: Uint8Array;
  signedPreKeyId: number;
  oneTimePreKeyId: number | undefined;
};

export type Session = {
  remote: PublicDeviceKeys;
  /** X3DH AD (both identities); prefixed to every header as AEAD associated data. */
  associatedData: Uint8Array;
  /** EK_A: names the X3DH run this session came from (both sides know it). */
  baseKey: Uint8Array;
  ratchet: RatchetState;
  /** Set on the initiator until its first successful decryption. */
  pendingPreKey: PendingPreKey | null;
  /**
   * Earlier sessions with the same device, newest first, kept after a new X3DH run replaced
   * them (Signal's archived session states): when both devices start a session at once, each
   * ends up with the other's as current, and a message on the one it started itself must still
   * decrypt. See `decryptFromDevice`.
   */
  archived: SessionState[];
};

/** A session without its archive: what is archived. */
export type SessionState = Omit<Session, 'archived'>;

export type PreKeyMessage = {
  sender: PublicDeviceKeys;
  baseKey: Uint8Array;
  signedPreKeyId: number;
  oneTimePreKeyId: number | undefined;
  message: Uint8Array;
};

export function encodePreKeyMessage(m: PreKeyMessage): Uint8Array {
  return writer()
    .u8(WIRE_VERSION)
    .u8(WireType.PreKeyMessage)
    .bytes(m.sender.identityKey)
    .bytes(m.sender.signingKey)
    .bytes(m.baseKey)
    .u32(m.signedPreKeyId)
    .u8(m.oneTimePreKeyId === undefined ? 0 : 1)
    .u32(m.oneTimePreKeyId ?? 0)
    .bytes(m.message)
    .finish();
}

export function parsePreKeyMessage(bytes: Uint8Array): PreKeyMessage {
  const r = reader(bytes, 'prekey message');
  const version = r.u8();
  if (version !== WIRE_VERSION)
    throw new CryptoError('UNKNOWN_VERSION', `message version ${version}`);
  if (r.u8() !== WireType.PreKeyMessage) throw new CryptoError('MALFORMED', 'not a prekey message');
  const sender = { identityKey: r.bytes(KEY_LENGTH), signingKey: r.bytes(KEY_LENGTH) };
  const baseKey = r.bytes(KEY_LENGTH);
  const signedPreKeyId = r.u32();
  const hasOneTime = r.u8();
  const oneTimeId = r.u32();
  if (hasOneTime > 1) throw new CryptoError('MALFORMED', 'bad one-time prekey flag');
  return {
    sender,
    baseKey,
    signedPreKeyId,
    oneTimePreKeyId: hasOneTime === 1 ? oneTimeId : undefined,
    message: r.rest(),
  };
}

/** The wire type of a message (1 = ratchet message, 2 = prekey message), version checked. */
export function messageType(bytes: Uint8Array): WireType {
  const r = reader(bytes, 'message');
  const version = r.u8();
  if (version !== WIRE_VERSION)
    throw new CryptoError('UNKNOWN_VERSION', `message version ${version}`);
  const type = r.u8();
  if (type !== WireType.Message && type !== WireType.PreKeyMessage) {
    throw new CryptoError('MALFORMED', `not a pairwise message (type ${type})`);
  }
  return type;
}

/** Alice: runs X3DH against a claimed bundle (verifying its signed prekey). */
export function createOutboundSession(local: DeviceKeys, bundle: PreKeyBundle): Session {
  const x3dh = x3dhInitiate(local, bundle);
  return {
    remote: { identityKey: bundle.identityKey, signingKey: bundle.signingKey },
    associatedData: x3dh.associatedData,
    baseKey: x3dh.baseKey,
    ratchet: initInitiator(x3dh.sharedKey, bundle.signedPreKey.publicKey),
    pendingPreKey: {
      local: publicDeviceKeys(local),
      baseKey: x3dh.baseKey,
      signedPreKeyId: x3dh.signedPreKeyId,
      oneTimePreKeyId: x3dh.oneTimePreKeyId,
    },
    archived: [],
  };
}

export function encrypt(
  session: Session,
  plaintext: Uint8Array,
): { session: Session; message: Uint8Array } {
  const { state, message } = ratchetEncrypt(session.ratchet, plaintext, session.associatedData);
  const next = { ...session, ratchet: state };
  const pending = session.pendingPreKey;
  if (!pending) return { session: next, message };
  return {
    session: next,
    message: encodePreKeyMessage({
      sender: pending.local,
      baseKey: pending.baseKey,
      signedPreKeyId: pending.signedPreKeyId,
      oneTimePreKeyId: pending.oneTimePreKeyId,
      message,
    }),
  };
}

/**
 * Decrypts a ratchet message, or a prekey message of this same session (the initiator keeps
 * sending those until it hears back). A prekey message of another X3DH run is UNKNOWN_KEY:
 * the caller starts a new inbound session for it.
 */
export function decrypt(
  session: Session,
  bytes: Uint8Array,
  limits: RatchetLimits = DEFAULT_RATCHET_LIMITS,
): { session: Session; plaintext: Uint8Array } {
  let message = bytes;
  if (messageType(bytes) === WireType.PreKeyMessage) {
    const preKey = parsePreKeyMessage(bytes);
    if (
      !equalBytes(preKey.baseKey, session.baseKey) ||
      !equalBytes(preKey.sender.identityKey, session.remote.identityKey) ||
      !equalBytes(preKey.sender.signingKey, session.remote.signingKey)
    ) {
      throw new CryptoError('UNKNOWN_KEY', 'prekey message for another session');
    }
    message = preKey.message;
  }
  const { state, plaintext } = ratchetDecrypt(
    session.ratchet,
    message,
    session.associatedData,
    limits,
  );
  return { session: { ...session, ratchet: state, pendingPreKey: null }, plaintext };
}

/**
 * Bob: builds the session from a prekey message and the prekeys it names (the caller fetches
 * them from its store, and deletes the one-time prekey once this succeeds).
 */
export function createInboundSession(
  local: DeviceKeys,
  preKeys: { signedPreKey: KeyPair; oneTimePreKey: KeyPair | undefined },
  bytes: Uint8Array,
  limits: RatchetLimits = DEFAULT_RATCHET_LIMITS,
): { session: Session; plaintext: Uint8Array } {
  const preKey = parsePreKeyMessage(bytes);
  if ((preKey.oneTimePreKeyId === undefined) !== (preKeys.oneTimePreKey === undefined)) {
    throw new CryptoError('UNKNOWN_KEY', 'one-time prekey missing or unexpected');
  }
  const { sharedKey, associatedData } = x3dhRespond(
    local,
    preKeys.signedPreKey,
    preKeys.oneTimePreKey,
    preKey.sender,
    preKey.baseKey,
  );
  const session: Session = {
    remote: preKey.sender,
    associatedData,
    baseKey: preKey.baseKey,
    ratchet: initResponder(sharedKey, preKeys.signedPreKey),
    pendingPreKey: null,
    archived: [],
  };
  return decrypt(session, bytes, limits);
}
