import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import {
  decodeJwt,
  decodeProtectedHeader,
  importJWK,
  SignJWT,
  UnsecuredJWT,
  type JWTHeaderParameters,
  type JWTPayload,
} from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  createTokenSigner,
  generateSigningKey,
  signingKeyProblem,
  verifyKeyProblem,
  type TokenSigner,
  type TokenSignerOptions,
} from './tokens';

const T0 = Date.UTC(2030, 0, 1, 12, 0, 0);
const ISS = 'https://chat.example.com';
const AUD = 'mvp-api';
const TTL = 900;

let key: Record<string, unknown>;
let clock = T0;
let signer: TokenSigner;

const options = (over: Partial<TokenSignerOptions> = {}): TokenSignerOptions => ({
  signingKey: key,
  issuer: ISS,
  audience: AUD,
  ttlSeconds: TTL,
  now: () => clock,
  ...over,
});

const base = (): JWTPayload => {
  const iat = Math.floor(clock / 1000);
  return { iss: ISS, aud: AUD, sub: 'u1', sid: 's1', jti: 'j1', iat, exp: iat + TTL };
};

/** Signs arbitrary header and claims with an Ed25519 private JWK: our key or a stranger's. */
async function forge(
  jwk: Record<string, unknown>,
  header: Partial<JWTHeaderParameters> = {},
  claims: JWTPayload = base(),
): Promise<string> {
  const priv = await importJWK(
    { kty: 'OKP', crv: 'Ed25519', d: jwk.d, x: jwk.x } as never,
    'EdDSA',
  );
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'EdDSA', typ: 'at+jwt', kid: jwk.kid as string, ...header })
    .sign(priv);
}

beforeAll(async () => {
  key = await generateSigningKey();
  signer = await createTokenSigner(options());
});

describe('createTokenSigner', () => {
  it('signs an EdDSA at+jwt with the documented claims and verifies it', async () => {
    clock = T0;
    const { token, expiresAt } = await signer.sign({ userId: 'u1', sessionId: 's1' });
    expect(decodeProtectedHeader(token)).toEqual({ alg: 'EdDSA', typ: 'at+jwt', kid: key.kid });
    const payload = decodeJwt(token);
    expect(payload).toMatchObject({ iss: ISS, aud: AUD, sub: 'u1', sid: 's1' });
    expect(payload.iat).toBe(T0 / 1000);
    expect(payload.exp).toBe(T0 / 1000 + TTL);
    expect(expiresAt).toBe(T0 + TTL * 1000);
    expect(payload.jti).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(Object.keys(payload).sort()).toEqual(['aud', 'exp', 'iat', 'iss', 'jti', 'sid', 'sub']);
    const claims = await signer.verify(token);
    expect(claims).toEqual({ userId: 'u1', sessionId: 's1', jti: payload.jti, expiresAt });
  });

  it('gives every token a fresh jti', async () => {
    const a = await signer.sign({ userId: 'u1', sessionId: 's1' });
    const b = await signer.sign({ userId: 'u1', sessionId: 's1' });
    expect(decodeJwt(a.token).jti).not.toBe(decodeJwt(b.token).jti);
  });

  it('accepts a token until exp and refuses it after (beyond 5 s clock tolerance)', async () => {
    clock = T0;
    const { token, expiresAt } = await signer.sign({ userId: 'u1', sessionId: 's1' });
    clock = expiresAt - 1000;
    expect(await signer.verify(token)).not.toBeNull();
    clock = expiresAt + 5_000;
    expect(await signer.verify(token)).toBeNull();
    clock = expiresAt + 3_600_000;
    expect(await signer.verify(token)).toBeNull();
    // Issued in the future, as seen from a server whose clock is behind by more than 5 s.
    clock = T0 - 10_000;
    expect(await signer.verify(token)).toBeNull();
    clock = T0;
  });

  it('accepts a well-formed forged token only when it is genuinely ours (control)', async () => {
    expect(await signer.verify(await forge(key))).toEqual({
      userId: 'u1',
      sessionId: 's1',
      jti: 'j1',
      expiresAt: (T0 / 1000 + TTL) * 1000,
    });
  });

  describe('refuses (verify → null)', () => {
    it('alg none, in any spelling', async () => {
      const claims = base();
      const unsecured = new UnsecuredJWT(claims).encode();
      expect(await signer.verify(unsecured)).toBeNull();
      const enc = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
      for (const alg of ['none', 'None', 'NONE']) {
        const header = enc({ alg, typ: 'at+jwt', kid: key.kid });
        expect(await signer.verify(`${header}.${enc(claims)}.`)).toBeNull();
        // With a signature segment copied from a real token.
        const real = (await signer.sign({ userId: 'u1', sessionId: 's1' })).token;
        expect(await signer.verify(`${header}.${enc(claims)}.${real.split('.')[2]}`)).toBeNull();
      }
    });

    it('HS256 signed with the public key as the secret (key confusion)', async () => {
      const x = key.x as string;
      const pem = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x }, format: 'jwk' })
        .export({ type: 'spki', format: 'pem' })
        .toString();
      const secrets = [
        Buffer.from(x, 'base64url'),
        new TextEncoder().encode(x),
        new TextEncoder().encode(JSON.stringify(signer.jwks().keys[0])),
        new TextEncoder().encode(pem),
      ];
      for (const secret of secrets) {
        const token = await new SignJWT(base())
          .setProtectedHeader({ alg: 'HS256', typ: 'at+jwt', kid: key.kid as string })
          .sign(secret);
        expect(await signer.verify(token)).toBeNull();
      }
    });

    it('a different asymmetric algorithm under our kid', async () => {
      const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      const token = await new SignJWT(base())
        .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: key.kid as string })
        .sign(privateKey);
      expect(await signer.verify(token)).toBeNull();
    });

    it('wrong audience, wrong issuer, missing aud or iss', async () => {
      expect(await signer.verify(await forge(key, {}, { ...base(), aud: 'other-api' }))).toBeNull();
      expect(
        await signer.verify(await forge(key, {}, { ...base(), iss: 'https://evil' })),
      ).toBeNull();
      const { aud: _aud, ...noAud } = base();
      const { iss: _iss, ...noIss } = base();
      expect(await signer.verify(await forge(key, {}, noAud))).toBeNull();
      expect(await signer.verify(await forge(key, {}, noIss))).toBeNull();
    });

    it('wrong or missing typ (e.g. an ID token)', async () => {
      expect(await signer.verify(await forge(key, { typ: 'JWT' }))).toBeNull();
      expect(await signer.verify(await forge(key, { typ: 'id_token+jwt' }))).toBeNull();
      expect(await signer.verify(await forge(key, { typ: undefined }))).toBeNull();
    });

    it('missing sub, sid, jti, iat or exp, or a non-string sid', async () => {
      for (const claim of ['sub', 'sid', 'jti', 'iat', 'exp']) {
        const claims = base();
        delete claims[claim];
        expect(await signer.verify(await forge(key, {}, claims)), claim).toBeNull();
      }
      expect(await signer.verify(await forge(key, {}, { ...base(), sid: 42 }))).toBeNull();
      expect(await signer.verify(await forge(key, {}, { ...base(), sub: '' }))).toBeNull();
    });

    it('a token valid for longer than the configured TTL', async () => {
      const claims = base();
      claims.exp = claims.iat! + 30 * 86_400;
      clock = T0 + (TTL + 60) * 1000;
      expect(await signer.verify(await forge(key, {}, claims))).toBeNull();
      clock = T0;
    });

    it('a token signed by an unknown Ed25519 key, with our kid or another', async () => {
      const stranger = await generateSigningKey();
      expect(await signer.verify(await forge({ ...stranger, kid: key.kid }))).toBeNull();
      expect(await signer.verify(await forge(stranger))).toBeNull();
    });

    it('a token without kid, even when signed by our key', async () => {
      expect(await signer.verify(await forge(key, { kid: undefined }))).toBeNull();
    });

    it('a tampered payload or signature', async () => {
      const { token } = await signer.sign({ userId: 'u1', sessionId: 's1' });
      const [h, p, s] = token.split('.') as [string, string, string];
      const payload = JSON.parse(Buffer.from(p, 'base64url').toString()) as JWTPayload;
      const swapped = Buffer.from(JSON.stringify({ ...payload, sub: 'admin' })).toString(
        'base64url',
      );
      expect(await signer.verify(`${h}.${swapped}.${s}`)).toBeNull();
      const sig = Buffer.from(s, 'base64url');
      sig[0] = sig[0]! ^ 1;
      expect(await signer.verify(`${h}.${p}.${sig.toString('base64url')}`)).toBeNull();
      const header = Buffer.from(JSON.stringify({ ...decodeProtectedHeader(token), x: 1 }));
      expect(await signer.verify(`${header.toString('base64url')}.${p}.${s}`)).toBeNull();
      expect(await signer.verify(token)).not.toBeNull();
    });

    it('garbage', async () => {
      const garbage = [
        '',
        'abc',
        'a.b.c',
        '..',
        '...',
        'e30.e30.',
        'Bearer x',
        'x'.repeat(100_000),
      ];
      for (const g of garbage) expect(await signer.verify(g)).toBeNull();
      for (const g of [null, undefined, 42, {}]) {
        expect(await signer.verify(g as string)).toBeNull();
      }
    });

    it('a token for another issuer/audience configuration with the same key', async () => {
      const other = await createTokenSigner(options({ audience: 'admin-api' }));
      const { token } = await other.sign({ userId: 'u1', sessionId: 's1' });
      expect(await signer.verify(token)).toBeNull();
      expect(await other.verify(token)).not.toBeNull();
    });
  });

  it('rotation: a token signed by an old key listed in verifyKeys is accepted', async () => {
    const oldKey = await generateSigningKey();
    const oldSigner = await createTokenSigner(options({ signingKey: oldKey }));
    const { token } = await oldSigner.sign({ userId: 'u9', sessionId: 's9' });
    expect(await signer.verify(token)).toBeNull();
    const oldPublic = oldSigner.jwks().keys[0]!;
    const rotated = await createTokenSigner(options({ verifyKeys: [oldPublic] }));
    expect(await rotated.verify(token)).toMatchObject({ userId: 'u9', sessionId: 's9' });
    const { token: fresh } = await rotated.sign({ userId: 'u1', sessionId: 's1' });
    expect(decodeProtectedHeader(fresh).kid).toBe(key.kid);
  });

  it('jwks() lists the public signing and verify keys with no private parts', async () => {
    const oldKey = await generateSigningKey();
    const { d: _d, ...oldPublic } = oldKey;
    const rotated = await createTokenSigner(options({ verifyKeys: [oldPublic] }));
    const { keys } = rotated.jwks();
    expect(keys).toEqual([
      { kty: 'OKP', crv: 'Ed25519', x: key.x, kid: key.kid, alg: 'EdDSA', use: 'sig' },
      { kty: 'OKP', crv: 'Ed25519', x: oldKey.x, kid: oldKey.kid, alg: 'EdDSA', use: 'sig' },
    ]);
    expect(JSON.stringify(keys)).not.toContain(key.d as string);
    for (const k of keys) expect(k).not.toHaveProperty('d');
    // A copy: callers cannot change what we verify against.
    keys[0]!.x = 'changed';
    expect(rotated.jwks().keys[0]!.x).toBe(key.x);
  });

  it('sign refuses an empty subject', async () => {
    await expect(signer.sign({ userId: '', sessionId: 's1' })).rejects.toThrow(/userId/);
    await expect(signer.sign({ userId: 'u1', sessionId: '' })).rejects.toThrow(/sessionId/);
  });

  describe('option validation', () => {
    it('refuses bad signing keys without echoing key material', async () => {
      const other = await generateSigningKey();
      const cases: [Record<string, unknown>, RegExp][] = [
        [{ ...key, d: undefined }, /needs d/],
        [{ ...key, crv: 'X25519' }, /Ed25519/],
        [{ ...key, kty: 'EC' }, /Ed25519/],
        [{ ...key, kid: undefined }, /kid/],
        [{ ...key, kid: 'has space' }, /kid/],
        [{ ...key, alg: 'HS256' }, /alg/],
        [{ ...key, x: other.x }, /x does not belong to d/],
        [{ ...key, x: 'short' }, /needs x/],
      ];
      for (const [bad, message] of cases) {
        const error = await createTokenSigner(options({ signingKey: bad })).catch((e: Error) => e);
        expect(error).toBeInstanceOf(Error);
        expect((error as Error).message).toMatch(message);
        expect((error as Error).message).not.toContain(key.d as string);
      }
    });

    it('refuses private or malformed verify keys and duplicate kids', async () => {
      const oldKey = await generateSigningKey();
      const { d: _d, ...oldPublic } = oldKey;
      await expect(createTokenSigner(options({ verifyKeys: [oldKey] }))).rejects.toThrow(
        /verifyKeys\[0\] must be a public key/,
      );
      await expect(
        createTokenSigner(options({ verifyKeys: [oldPublic, { kty: 'RSA' }] })),
      ).rejects.toThrow(/verifyKeys\[1\]/);
      await expect(
        createTokenSigner(options({ verifyKeys: [{ ...oldPublic, kid: key.kid }] })),
      ).rejects.toThrow(/duplicate kid/);
    });

    it('refuses missing issuer/audience and out-of-range TTLs', async () => {
      await expect(createTokenSigner(options({ issuer: '' }))).rejects.toThrow(/issuer/);
      await expect(createTokenSigner(options({ audience: '' }))).rejects.toThrow(/audience/);
      for (const ttlSeconds of [0, -1, 1.5, 86_401, Number.NaN]) {
        await expect(createTokenSigner(options({ ttlSeconds }))).rejects.toThrow(/ttlSeconds/);
      }
    });
  });
});

describe('generateSigningKey', () => {
  it('makes a valid Ed25519 private JWK with a random kid', async () => {
    const a = await generateSigningKey();
    const b = await generateSigningKey();
    expect(a).toMatchObject({ kty: 'OKP', crv: 'Ed25519', alg: 'EdDSA' });
    expect(Buffer.from(a.d as string, 'base64url')).toHaveLength(32);
    expect(a.kid).not.toBe(b.kid);
    expect(a.d).not.toBe(b.d);
    expect(signingKeyProblem(a)).toBeNull();
    expect(verifyKeyProblem(a)).toMatch(/public/);
    const { d: _d, ...pub } = a;
    expect(verifyKeyProblem(pub)).toBeNull();
    expect(signingKeyProblem(pub)).toMatch(/needs d/);
    expect(signingKeyProblem('{"kty":"OKP"}')).toMatch(/JWK object/);
  });
});
