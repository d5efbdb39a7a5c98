import { generateKeyPair, exportJWK, SignJWT, importJWK, type JWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { errorCodeOf } from '@mvp/sdk';
import { clientWithToken, registerUser, type Account } from './helpers/accounts';
import { startServer, type TestServer } from './helpers/startServer';
import { backendLabel } from './helpers/env';
import { testJwtSigningKey } from './helpers/testKeys';

const b64url = (s: string) => Buffer.from(s).toString('base64url');

describe(`forged and stale access tokens are refused (${backendLabel})`, () => {
  let t: TestServer;
  let account: Account;
  // The test servers' shared key (their MySQL database records it): the test forges with it.
  const signingKey = testJwtSigningKey;
  const issuer = 'mvp-test';
  const audience = 'mvp-api';

  beforeAll(async () => {
    t = await startServer(
      {},
      {
        auth: {
          jwt: {
            signingKey: JSON.stringify(signingKey),
            verifyKeys: undefined,
            issuer,
            audience,
            accessTtlSeconds: 900,
          },
        },
      },
    );
    account = await registerUser(t);
  });
  afterAll(() => t.stop());

  const meWith = (token: string) =>
    clientWithToken(t, token)
      .api.me.get.query()
      .then(
        () => 'ok',
        (e: unknown) => errorCodeOf(e),
      );

  /** Signs claims with the server's real key, so only the claim under test is wrong. */
  async function signWithServerKey(
    claims: Record<string, unknown>,
    header: Record<string, unknown> = {},
  ) {
    const key = await importJWK(signingKey as JWK, 'EdDSA');
    const now = Math.floor(Date.now() / 1000);
    const payload = {
      iss: issuer,
      aud: audience,
      sub: account.userId,
      sid: account.sessionId,
      jti: 'jti-test',
      iat: now,
      exp: now + 600,
      ...claims,
    };
    return new SignJWT(payload)
      .setProtectedHeader({ alg: 'EdDSA', typ: 'at+jwt', kid: signingKey.kid as string, ...header })
      .sign(key);
  }

  it('a real token works (the baseline the forgeries differ from)', async () => {
    expect(await meWith(account.accessToken)).toBe('ok');
    expect(await meWith(await signWithServerKey({}))).toBe('ok');
  });

  it('alg none', async () => {
    const [, payload] = account.accessToken.split('.');
    const forged = `${b64url(JSON.stringify({ alg: 'none', typ: 'at+jwt' }))}.${payload}.`;
    expect(await meWith(forged)).toBe('UNAUTHORIZED');
  });

  it('HS256 signed with the public key as the secret', async () => {
    const jwks = (await (await fetch(`${t.server.url}/.well-known/jwks.json`)).json()) as {
      keys: JWK[];
    };
    const publicKey = jwks.keys[0]!;
    expect(publicKey.d).toBeUndefined();
    const [header, payload] = [
      b64url(JSON.stringify({ alg: 'HS256', typ: 'at+jwt', kid: publicKey.kid })),
      account.accessToken.split('.')[1],
    ];
    for (const secret of [
      JSON.stringify(publicKey),
      publicKey.x!,
      Buffer.from(publicKey.x!, 'base64url'),
    ]) {
      const { createHmac } = await import('node:crypto');
      const sig = createHmac('sha256', secret).update(`${header}.${payload}`).digest('base64url');
      expect(await meWith(`${header}.${payload}.${sig}`)).toBe('UNAUTHORIZED');
    }
  });

  it.each([
    ['a wrong audience', { aud: 'someone-else' }],
    ['a wrong issuer', { iss: 'evil' }],
    ['an expired token', { exp: Math.floor(Date.now() / 1000) - 60 }],
    [
      'issued in the future',
      { iat: Math.floor(Date.now() / 1000) + 3600, exp: Math.floor(Date.now() / 1000) + 4000 },
    ],
    ['no session id', { sid: undefined }],
  ])('%s', async (_label, claims) => {
    expect(await meWith(await signWithServerKey(claims))).toBe('UNAUTHORIZED');
  });

  it('a wrong typ header', async () => {
    expect(await meWith(await signWithServerKey({}, { typ: 'JWT' }))).toBe('UNAUTHORIZED');
  });

  it('signed by an unknown key, with or without the real kid', async () => {
    const { privateKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519', extractable: true });
    for (const kid of [signingKey.kid as string, 'unknown-kid']) {
      const now = Math.floor(Date.now() / 1000);
      const forged = await new SignJWT({ sid: account.sessionId })
        .setProtectedHeader({ alg: 'EdDSA', typ: 'at+jwt', kid })
        .setIssuer(issuer)
        .setAudience(audience)
        .setSubject(account.userId)
        .setJti('x')
        .setIssuedAt(now)
        .setExpirationTime(now + 600)
        .sign(privateKey);
      expect(await meWith(forged)).toBe('UNAUTHORIZED');
    }
    expect((await exportJWK(privateKey)).d).toBeDefined();
  });

  it('garbage and tampered tokens', async () => {
    const [h, p, s] = account.accessToken.split('.');
    const tampered = JSON.parse(Buffer.from(p!, 'base64url').toString()) as Record<string, unknown>;
    tampered.sub = '00000000-0000-0000-0000-000000000000';
    for (const token of ['garbage', 'a.b.c', `${h}.${b64url(JSON.stringify(tampered))}.${s}`]) {
      expect(await meWith(token)).toBe('UNAUTHORIZED');
    }
  });

  it('a token of a revoked session, at once on this instance', async () => {
    const other = await t.client.api.auth.login.mutate({
      identifier: account.username,
      password: 'correct horse battery staple 42',
      device: { name: 'B', platform: 'web' },
    });
    if (other.status !== 'ok') throw new Error('expected tokens');
    expect(await meWith(other.accessToken)).toBe('ok');
    await clientWithToken(t, account.accessToken).api.sessions.revoke.mutate({
      id: other.sessionId,
    });
    expect(await meWith(other.accessToken)).toBe('UNAUTHORIZED');
  });
});
