import { createPublicKey, diffieHellman, generateKeyPairSync } from 'node:crypto';

// Any private key will do: only whether a Diffie-Hellman with the public key works is asked.
const probe = generateKeyPairSync('x25519').privateKey;

/**
 * Whether a raw X25519 public key (base64) is one X3DH can use. A low-order point makes every
 * Diffie-Hellman with it all zeros, which clients refuse: published, it failed every sender's
 * session with that device. OpenSSL refuses such a derivation, so one probe tells (~0.1 ms).
 */
export function usableX25519(publicKey: string): boolean {
  try {
    const key = createPublicKey({
      key: { kty: 'OKP', crv: 'X25519', x: Buffer.from(publicKey, 'base64').toString('base64url') },
      format: 'jwk',
    });
    diffieHellman({ privateKey: probe, publicKey: key });
    return true;
  } catch {
    return false;
  }
}
