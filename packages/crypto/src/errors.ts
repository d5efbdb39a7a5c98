/**
 * Every failure this package reports is a `CryptoError` with a code the SDK can switch on.
 * Messages never contain key material or plaintext.
 */
export type CryptoErrorCode =
  /** `crypto.getRandomValues` is missing: we refuse to run rather than fall back. */
  | 'NO_SECURE_RANDOM'
  /** A key has the wrong length or is not a valid point. */
  | 'INVALID_KEY'
  /** An Ed25519 signature did not verify (signed prekey, sender-key message). */
  | 'BAD_SIGNATURE'
  /** Authentication failed: tampered ciphertext, nonce, header or wrong key. */
  | 'DECRYPT_FAILED'
  /**
   * A replay or duplicate: a group message noted read here (`noteGroupMessageRead`), or a
   * pairwise message whose key was used (or not kept).
   */
  | 'DUPLICATE_MESSAGE'
  /**
   * A group message whose key is gone but that was never noted read (used by a decryption
   * whose result did not reach the app, dropped from the out-of-order window, from before the
   * key was received, or forgotten with a retired key): its content can only come from its
   * sender again.
   */
  | 'MESSAGE_KEY_GONE'
  /** The message would need more skipped message keys than the configured bound. */
  | 'TOO_MANY_SKIPPED'
  /** Bytes that do not parse as the expected structure. */
  | 'MALFORMED'
  /** A version byte or field this build does not know. */
  | 'UNKNOWN_VERSION'
  /** A prekey, session or sender key the message refers to is not in the store. */
  | 'UNKNOWN_KEY';

export class CryptoError extends Error {
  readonly code: CryptoErrorCode;

  constructor(code: CryptoErrorCode, message: string) {
    super(message);
    this.name = 'CryptoError';
    this.code = code;
  }
}

export function isCryptoError(error: unknown, code?: CryptoErrorCode): error is CryptoError {
  return error instanceof CryptoError && (code === undefined || error.code === code);
}
