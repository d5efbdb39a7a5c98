/**
 * Every byte string this package puts on the wire starts with a version byte and a type
 * byte. Parsers refuse other versions (UNKNOWN_VERSION) rather than guess.
 */
export const WIRE_VERSION = 1;

export const WireType = {
  /** Double Ratchet message: header || nonce || ciphertext. */
  Message: 1,
  /** First messages of a session: X3DH fields || ratchet message. */
  PreKeyMessage: 2,
  /** Group message under a sender key: header || nonce || ciphertext || signature. */
  SenderKeyMessage: 3,
  /** A sender key's chain key and signing public key, sent over a pairwise session. */
  SenderKeyDistribution: 4,
} as const;

export type WireType = (typeof WireType)[keyof typeof WireType];
