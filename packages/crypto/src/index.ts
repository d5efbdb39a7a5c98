/**
 * @mvp/crypto: isomorphic end-to-end encryption for MVP (browsers, Node, React Native), on
 * @noble/curves, @noble/hashes and @noble/ciphers only. See README.md for the model.
 */
export { CryptoError, isCryptoError, type CryptoErrorCode } from './errors.js';
export { randomBytes } from './random.js';
export { toBase64, fromBase64, utf8, equalBytes } from './bytes.js';
export type { KeyPair } from './primitives.js';
/** Raw primitives (X25519, Ed25519, HKDF, HMAC, XChaCha20-Poly1305), for baselines and tests. */
export * as primitives from './primitives.js';
export { WIRE_VERSION, WireType } from './wire.js';

export {
  generateDeviceKeys,
  publicDeviceKeys,
  generateSignedPreKey,
  generateOneTimePreKeys,
  verifySignedPreKey,
  preKeyBundle,
  type DeviceKeys,
  type PublicDeviceKeys,
  type SignedPreKey,
  type OneTimePreKey,
  type PreKeyBundle,
} from './keys.js';

export {
  createOutboundSession,
  createInboundSession,
  encrypt,
  decrypt,
  messageType,
  parsePreKeyMessage,
  type Session,
  type SessionState,
  type PreKeyMessage,
} from './session.js';
export { DEFAULT_RATCHET_LIMITS, type RatchetLimits } from './ratchet.js';

export {
  createSenderKey,
  rotateSenderKey,
  senderKeyDistribution,
  processSenderKeyDistribution,
  retireSenderKey,
  senderKeyRead,
  withRead,
  MAX_READ_RANGES,
  groupEncrypt,
  groupDecrypt,
  parseSenderKeyMessage,
  DEFAULT_SENDER_KEY_LIMITS,
  type OutboundSenderKey,
  type InboundSenderKey,
  type SenderKeyLimits,
} from './senderKeys.js';

export {
  safetyNumber,
  safetyNumberQrPayload,
  compareSafetyNumberQr,
  type SafetyNumberParty,
} from './safetyNumber.js';

export {
  STATE_VERSION,
  serializeDeviceKeys,
  deserializeDeviceKeys,
  serializeSignedPreKey,
  deserializeSignedPreKey,
  serializeOneTimePreKey,
  deserializeOneTimePreKey,
  serializeSession,
  deserializeSession,
  serializeOutboundSenderKey,
  deserializeOutboundSenderKey,
  serializeInboundSenderKey,
  deserializeInboundSenderKey,
  serializeTrust,
  deserializeTrust,
} from './serialize.js';

export { createMemoryStore, type CryptoStore, type TrustRecord } from './store.js';
export {
  generatePreKeys,
  startSession,
  encryptToDevice,
  decryptFromDevice,
  type CheckRemote,
  outboundSenderKey,
  rotateOutboundSenderKey,
  encryptGroup,
  receiveSenderKey,
  decryptGroup,
  wasGroupMessageRead,
  noteGroupMessageRead,
  retireSenderKeysOf,
  MAX_INBOUND_SENDER_KEYS,
  MAX_RETIRED_SENDER_KEYS,
} from './protocol.js';
