import { createHash, createPrivateKey } from 'node:crypto';

/**
 * The keys every test server uses unless a test gives its own. On MySQL all test servers share
 * one database, whose key fingerprint (src/keyFingerprint.ts) would refuse servers with keys of
 * their own; so they are fixed, derived from labels, the same in every run.
 */
const seed = (label: string) => createHash('sha256').update(label).digest();

// PKCS#8 wrapping of a raw 32-byte Ed25519 seed (RFC 8410): the only way node:crypto takes one.
const ED25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

const { kty, crv, d, x } = createPrivateKey({
  key: Buffer.concat([ED25519_PKCS8_PREFIX, seed('mvp test jwt signing key')]),
  format: 'der',
  type: 'pkcs8',
}).export({ format: 'jwk' });

export const testJwtSigningKey: Record<string, unknown> = {
  kty,
  crv,
  d,
  x,
  kid: 'mvp-test',
  alg: 'EdDSA',
};
export const testBlindIndexKey = seed('mvp test blind index key').toString('base64');
