import { createPublicKey, verify } from 'node:crypto';

/**
 * Checks an Ed25519 signature by a raw 32-byte public key (both base64). Node's own Ed25519
 * (OpenSSL) is used: the server only verifies, so no extra dependency is needed here.
 */
export function verifyEd25519(publicKey: string, message: Uint8Array, signature: string): boolean {
  try {
    const key = createPublicKey({
      key: {
        kty: 'OKP',
        crv: 'Ed25519',
        x: Buffer.from(publicKey, 'base64').toString('base64url'),
      },
      format: 'jwk',
    });
    return verify(null, message, key, Buffer.from(signature, 'base64'));
  } catch {
    // Not a valid point, wrong length: not a valid signature either.
    return false;
  }
}
