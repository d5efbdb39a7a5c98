/**
 * The only doorway to @noble/*: every primitive the protocols use, with our error codes.
 * X25519 and Ed25519 (RFC 7748, RFC 8032), HKDF/HMAC-SHA256 (RFC 5869, RFC 2104),
 * XChaCha20-Poly1305 (draft-irtf-cfrg-xchacha). Key generation draws its seed from
 * `randomBytes`, so `crypto.getRandomValues` is the single randomness source.
 */
import { xchacha20poly1305 } from '@noble/ciphers/chacha.js';
import { ed25519, x25519 } from '@noble/curves/ed25519.js';
import { hkdf as nobleHkdf } from '@noble/hashes/hkdf.js';
import { hmac } from '@noble/hashes/hmac.js';
import { sha256, sha512 } from '@noble/hashes/sha2.js';
import { CryptoError } from './errors.js';
import { randomBytes } from './random.js';

export const KEY_LENGTH = 32;
export const SIGNATURE_LENGTH = 64;
export const NONCE_LENGTH = 24;
export const TAG_LENGTH = 16;

export type KeyPair = { publicKey: Uint8Array; secretKey: Uint8Array };

function assertLength(bytes: Uint8Array, length: number, what: string): void {
  if (!(bytes instanceof Uint8Array) || bytes.length !== length) {
    throw new CryptoError('INVALID_KEY', `${what} must be ${length} bytes`);
  }
}

export function generateX25519KeyPair(): KeyPair {
  const { secretKey, publicKey } = x25519.keygen(randomBytes(KEY_LENGTH));
  return { secretKey, publicKey };
}

export function x25519PublicKey(secretKey: Uint8Array): Uint8Array {
  assertLength(secretKey, KEY_LENGTH, 'X25519 secret key');
  return x25519.getPublicKey(secretKey);
}

/** X25519; a low-order public key (all-zero shared secret) is refused as INVALID_KEY. */
export function dh(secretKey: Uint8Array, publicKey: Uint8Array): Uint8Array {
  assertLength(secretKey, KEY_LENGTH, 'X25519 secret key');
  assertLength(publicKey, KEY_LENGTH, 'X25519 public key');
  try {
    return x25519.getSharedSecret(secretKey, publicKey);
  } catch {
    throw new CryptoError('INVALID_KEY', 'X25519 public key is invalid or of low order');
  }
}

export function generateEd25519KeyPair(): KeyPair {
  const { secretKey, publicKey } = ed25519.keygen(randomBytes(KEY_LENGTH));
  return { secretKey, publicKey };
}

export function ed25519PublicKey(secretKey: Uint8Array): Uint8Array {
  assertLength(secretKey, KEY_LENGTH, 'Ed25519 secret key');
  return ed25519.getPublicKey(secretKey);
}

export function sign(secretKey: Uint8Array, message: Uint8Array): Uint8Array {
  assertLength(secretKey, KEY_LENGTH, 'Ed25519 secret key');
  return ed25519.sign(message, secretKey);
}

/** Strict RFC 8032 verification (no ZIP-215 leniency): non-canonical encodings fail. */
export function verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  if (publicKey.length !== KEY_LENGTH || signature.length !== SIGNATURE_LENGTH) return false;
  try {
    return ed25519.verify(signature, message, publicKey, { zip215: false });
  } catch {
    return false;
  }
}

export function hkdf(
  ikm: Uint8Array,
  salt: Uint8Array | undefined,
  info: Uint8Array,
  length: number,
): Uint8Array {
  return nobleHkdf(sha256, ikm, salt, info, length);
}

export function hmacSha256(key: Uint8Array, data: Uint8Array): Uint8Array {
  return hmac(sha256, key, data);
}

export { sha512 };

/** XChaCha20-Poly1305: ciphertext || 16-byte tag. */
export function seal(
  key: Uint8Array,
  nonce: Uint8Array,
  plaintext: Uint8Array,
  ad: Uint8Array,
): Uint8Array {
  assertLength(key, KEY_LENGTH, 'AEAD key');
  assertLength(nonce, NONCE_LENGTH, 'AEAD nonce');
  return xchacha20poly1305(key, nonce, ad).encrypt(plaintext);
}

/** Opens what `seal` produced; any authentication failure is DECRYPT_FAILED. */
export function open(
  key: Uint8Array,
  nonce: Uint8Array,
  ciphertext: Uint8Array,
  ad: Uint8Array,
): Uint8Array {
  assertLength(key, KEY_LENGTH, 'AEAD key');
  if (nonce.length !== NONCE_LENGTH || ciphertext.length < TAG_LENGTH) {
    throw new CryptoError('DECRYPT_FAILED', 'ciphertext or nonce has the wrong size');
  }
  try {
    return xchacha20poly1305(key, nonce, ad).decrypt(ciphertext);
  } catch {
    throw new CryptoError('DECRYPT_FAILED', 'message authentication failed');
  }
}
