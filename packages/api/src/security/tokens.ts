import { createPrivateKey, createPublicKey, generateKeyPair, randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import {
  createLocalJWKSet,
  importJWK,
  jwtVerify,
  SignJWT,
  type FlattenedJWSInput,
  type JWK,
  type JWSHeaderParameters,
} from 'jose';

/**
 * Short-lived access tokens (RFC 9068 profile): EdDSA-signed JWTs with `typ: at+jwt`.
 *
 * Verification pins everything an attacker could otherwise choose: the algorithm (allow-list of
 * one, so `none` and HS256-with-the-public-key are refused), the key (by `kid`, from our own
 * set only), issuer, audience and type (so an ID token or another service's JWT is not accepted).
 */
export type AccessClaims = { userId: string; sessionId: string; jti: string; expiresAt: number };
export type TokenSigner = {
  sign(subject: {
    userId: string;
    sessionId: string;
  }): Promise<{ token: string; expiresAt: number }>;
  /** Null for anything invalid: never throws. */
  verify(token: string): Promise<AccessClaims | null>;
  /** Public keys only (signing key + verifyKeys), for /.well-known/jwks.json. */
  jwks(): { keys: Record<string, unknown>[] };
};
export type TokenSignerOptions = {
  /** Ed25519 private JWK (kty OKP, crv Ed25519, d, x, kid). */
  signingKey: Record<string, unknown>;
  /** Extra public JWKs accepted during rotation. */
  verifyKeys?: Record<string, unknown>[];
  issuer: string;
  audience: string;
  ttlSeconds: number;
  /** Milliseconds since the epoch; for tests. */
  now?: () => number;
};

const ALG = 'EdDSA';
const TYP = 'at+jwt';
// Several servers' clocks disagree by a little: a token minted on one must not look "issued in
// the future" on another. Small against any sensible TTL.
const CLOCK_TOLERANCE_SECONDS = 5;
const MAX_TTL_SECONDS = 86_400;
// Far above any token we mint; refuses megabyte strings before any parsing.
const MAX_TOKEN_LENGTH = 8_192;
const KID = /^[A-Za-z0-9._~-]{1,128}$/;
const B64URL_32 = /^[A-Za-z0-9_-]{43}$/;

type PublicJwk = { kty: 'OKP'; crv: 'Ed25519'; x: string; kid: string; alg: 'EdDSA'; use: 'sig' };

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function publicProblem(jwk: Record<string, unknown>): string | null {
  if (jwk.kty !== 'OKP' || jwk.crv !== 'Ed25519')
    return 'must be an Ed25519 key (kty OKP, crv Ed25519)';
  if (typeof jwk.x !== 'string' || !B64URL_32.test(jwk.x)) return 'needs x: 32 bytes, base64url';
  if (typeof jwk.kid !== 'string' || !KID.test(jwk.kid))
    return 'needs a kid ([A-Za-z0-9._~-], 1..128)';
  if (jwk.alg !== undefined && jwk.alg !== ALG) return 'alg must be EdDSA when present';
  if (jwk.use !== undefined && jwk.use !== 'sig') return 'use must be sig when present';
  return null;
}

/** Why `jwk` cannot be a signing key, or null. Never mentions key material. */
export function signingKeyProblem(jwk: unknown): string | null {
  if (!isRecord(jwk)) return 'must be a JWK object';
  const problem = publicProblem(jwk);
  if (problem) return problem;
  if (typeof jwk.d !== 'string' || !B64URL_32.test(jwk.d)) return 'needs d: 32 bytes, base64url';
  try {
    const derived = createPublicKey(createPrivateKey({ key: jwk as JWK, format: 'jwk' }));
    // Otherwise jwks() would publish a key that does not verify what we sign.
    if (derived.export({ format: 'jwk' }).x !== jwk.x) return 'x does not belong to d';
  } catch {
    return 'is not a valid Ed25519 private key';
  }
  return null;
}

/** Why `jwk` cannot be an accepted verification key, or null. */
export function verifyKeyProblem(jwk: unknown): string | null {
  if (!isRecord(jwk)) return 'must be a JWK object';
  if ('d' in jwk) return 'must be a public key (has d)';
  return publicProblem(jwk);
}

function toPublic(jwk: Record<string, unknown>): PublicJwk {
  // Built from named fields only, so nothing private can leak through jwks().
  return {
    kty: 'OKP',
    crv: 'Ed25519',
    x: jwk.x as string,
    kid: jwk.kid as string,
    alg: ALG,
    use: 'sig',
  };
}

function checkOptions(options: TokenSignerOptions): void {
  const { issuer, audience, ttlSeconds } = options;
  if (typeof issuer !== 'string' || !issuer) throw new Error('token signer: issuer is required');
  if (typeof audience !== 'string' || !audience) {
    throw new Error('token signer: audience is required');
  }
  if (!Number.isSafeInteger(ttlSeconds) || ttlSeconds < 1 || ttlSeconds > MAX_TTL_SECONDS) {
    throw new Error(`token signer: ttlSeconds must be an integer in 1..${MAX_TTL_SECONDS}`);
  }
  const problem = signingKeyProblem(options.signingKey);
  if (problem) throw new Error(`token signer: signingKey ${problem}`);
  const verifyKeys: unknown = options.verifyKeys ?? [];
  if (!Array.isArray(verifyKeys)) throw new Error('token signer: verifyKeys must be an array');
  verifyKeys.forEach((jwk: unknown, i) => {
    const p = verifyKeyProblem(jwk);
    if (p) throw new Error(`token signer: verifyKeys[${i}] ${p}`);
  });
}

export async function createTokenSigner(options: TokenSignerOptions): Promise<TokenSigner> {
  checkOptions(options);
  const { signingKey, issuer, audience, ttlSeconds, now = Date.now } = options;
  const kid = signingKey.kid as string;
  const publicKeys = [signingKey, ...(options.verifyKeys ?? [])].map(toPublic);
  const kids = new Set(publicKeys.map((k) => k.kid));
  if (kids.size !== publicKeys.length) throw new Error('token signer: duplicate kid');

  const privateKey = await importJWK(
    { kty: 'OKP', crv: 'Ed25519', x: signingKey.x as string, d: signingKey.d as string },
    ALG,
  );
  const keySet = createLocalJWKSet({ keys: publicKeys });
  // Without a kid jose would try every key in the set; we want exactly one candidate.
  const keyFor = (header: JWSHeaderParameters, token: FlattenedJWSInput) => {
    if (typeof header.kid !== 'string') throw new Error('kid required');
    return keySet(header, token);
  };

  return {
    async sign({ userId, sessionId }) {
      if (typeof userId !== 'string' || !userId) throw new Error('token signer: userId required');
      if (typeof sessionId !== 'string' || !sessionId) {
        throw new Error('token signer: sessionId required');
      }
      const iat = Math.floor(now() / 1000);
      const exp = iat + ttlSeconds;
      const token = await new SignJWT({ sid: sessionId })
        .setProtectedHeader({ alg: ALG, typ: TYP, kid })
        .setIssuer(issuer)
        .setAudience(audience)
        .setSubject(userId)
        .setJti(randomBytes(16).toString('base64url'))
        .setIssuedAt(iat)
        .setExpirationTime(exp)
        .sign(privateKey);
      return { token, expiresAt: exp * 1000 };
    },

    async verify(token) {
      if (typeof token !== 'string' || token.length > MAX_TOKEN_LENGTH) return null;
      try {
        const { payload } = await jwtVerify(token, keyFor, {
          algorithms: [ALG],
          issuer,
          audience,
          typ: TYP,
          currentDate: new Date(now()),
          requiredClaims: ['sub', 'jti', 'iat', 'exp'],
          // Also refuses an iat in the future, and tokens minted under a longer, older TTL.
          maxTokenAge: ttlSeconds,
          clockTolerance: CLOCK_TOLERANCE_SECONDS,
        });
        const { sub, sid, jti, exp } = payload;
        if (typeof sub !== 'string' || !sub) return null;
        if (typeof sid !== 'string' || !sid) return null;
        if (typeof jti !== 'string' || !jti) return null;
        if (typeof exp !== 'number') return null;
        return { userId: sub, sessionId: sid, jti, expiresAt: exp * 1000 };
      } catch {
        return null;
      }
    },

    jwks() {
      return { keys: publicKeys.map((k) => ({ ...k })) };
    },
  };
}

const generateEd25519 = promisify(generateKeyPair);

/** A new Ed25519 private JWK with a random kid and alg EdDSA (for keygen and first start). */
export async function generateSigningKey(): Promise<Record<string, unknown>> {
  const { privateKey } = await generateEd25519('ed25519');
  const { kty, crv, d, x } = privateKey.export({ format: 'jwk' });
  return { kty, crv, d, x, kid: randomBytes(12).toString('base64url'), alg: ALG };
}
