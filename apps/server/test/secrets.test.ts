import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createFieldCipher, createTokenSigner, generateSigningKey } from '@mvp/api';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadSecrets, type LoadSecretsInput } from '../src/secrets';

let dir: string;
let warnings: { obj: object; msg: string }[];

beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'mvp-secrets-'));
  warnings = [];
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const input = (over: Partial<LoadSecretsInput> = {}): LoadSecretsInput => ({
  dataDir: path.join(dir, 'data'),
  jwtSigningKey: undefined,
  jwtVerifyKeys: undefined,
  dataKeys: undefined,
  blindIndexKey: undefined,
  logger: { warn: (obj, msg) => warnings.push({ obj, msg }) },
  ...over,
});
const file = () => path.join(dir, 'data', 'secrets.json');
const readStored = async () =>
  JSON.parse(await readFile(file(), 'utf8')) as Record<string, unknown>;
const b64 = () => randomBytes(32).toString('base64');

async function errorOf(promise: Promise<unknown>): Promise<Error> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(error instanceof Error)) throw new Error('expected a rejection with an Error');
  return error;
}

describe('loadSecrets', () => {
  it('generates every secret on first start into a private secrets.json and warns once', async () => {
    const secrets = await loadSecrets(input());

    expect(secrets.jwtSigningKey).toMatchObject({ kty: 'OKP', crv: 'Ed25519' });
    expect(secrets.jwtVerifyKeys).toEqual([]);
    expect(secrets.fieldKeys.dataKeys).toHaveLength(1);
    expect(secrets.fieldKeys.dataKeys[0]!.key).toHaveLength(32);
    expect(secrets.fieldKeys.blindIndexKey).toHaveLength(32);

    // Usable as they are.
    const cipher = createFieldCipher(secrets.fieldKeys);
    expect(cipher.decrypt(cipher.encrypt('+4915112345678', 'c'), 'c')).toBe('+4915112345678');
    const signer = await createTokenSigner({
      signingKey: secrets.jwtSigningKey,
      verifyKeys: secrets.jwtVerifyKeys,
      issuer: 'i',
      audience: 'a',
      ttlSeconds: 60,
    });
    const { token } = await signer.sign({ userId: 'u', sessionId: 's' });
    expect(await signer.verify(token)).toMatchObject({ userId: 'u' });

    if (process.platform !== 'win32') expect((await stat(file())).mode & 0o777).toBe(0o600);
    // No temp file left behind.
    expect(await readdir(path.join(dir, 'data'))).toEqual(['secrets.json']);

    expect(warnings).toHaveLength(1);
    const [{ obj, msg }] = warnings as [{ obj: object; msg: string }];
    expect(obj).toEqual({
      generated: ['MVP_JWT_SIGNING_KEY', 'MVP_DATA_KEYS', 'MVP_BLIND_INDEX_KEY'],
      file: file(),
    });
    const logged = JSON.stringify({ obj, msg });
    const stored = await readStored();
    expect(logged).not.toContain((stored.jwtSigningKey as { d: string }).d);
    expect(logged).not.toContain(stored.blindIndexKey as string);
    expect(logged).not.toContain((stored.dataKeys as { key: string }[])[0]!.key);
  });

  it('reuses the file on a later start, silently', async () => {
    const first = await loadSecrets(input());
    const before = await readFile(file(), 'utf8');
    warnings = [];
    const second = await loadSecrets(input());
    expect(second).toEqual(first);
    expect(warnings).toEqual([]);
    expect(await readFile(file(), 'utf8')).toBe(before);
  });

  it('lets environment values win over the file, and keeps the file for the rest', async () => {
    const first = await loadSecrets(input());
    warnings = [];
    const signingKey = await generateSigningKey();
    const { d: _d, ...oldPublic } = first.jwtSigningKey;
    const dataKey = b64();
    const blind = b64();
    const second = await loadSecrets(
      input({
        jwtSigningKey: JSON.stringify(signingKey),
        jwtVerifyKeys: JSON.stringify([oldPublic]),
        dataKeys: [{ id: 'env1', key: dataKey }],
        blindIndexKey: blind,
      }),
    );
    expect(second.jwtSigningKey).toEqual(signingKey);
    expect(second.jwtVerifyKeys).toEqual([oldPublic]);
    expect(second.fieldKeys.dataKeys).toEqual([
      { id: 'env1', key: Buffer.from(dataKey, 'base64') },
    ]);
    expect(second.fieldKeys.blindIndexKey).toEqual(Buffer.from(blind, 'base64'));
    expect(warnings).toEqual([]);

    // Only the signing key from env: the rest still comes from the file.
    const third = await loadSecrets(input({ jwtSigningKey: JSON.stringify(signingKey) }));
    expect(third.jwtSigningKey).toEqual(signingKey);
    expect(third.fieldKeys).toEqual(first.fieldKeys);
  });

  it('touches no disk when the environment gives everything', async () => {
    const signingKey = await generateSigningKey();
    await loadSecrets(
      input({
        jwtSigningKey: JSON.stringify(signingKey),
        dataKeys: [{ id: 'a', key: b64() }],
        blindIndexKey: b64(),
      }),
    );
    expect(await readdir(dir)).toEqual([]);
    expect(warnings).toEqual([]);
  });

  it('generates only what is missing, keeps what the file has, and names just that', async () => {
    const blind = b64();
    const signing = await generateSigningKey();
    await loadSecrets(input({ blindIndexKey: blind, jwtSigningKey: JSON.stringify(signing) }));
    expect(warnings.map((w) => w.obj)).toEqual([{ generated: ['MVP_DATA_KEYS'], file: file() }]);
    const stored = await readStored();
    expect(Object.keys(stored).sort()).toEqual(['dataKeys', 'version']);

    // The env goes away: the signing and blind index keys are generated, data keys kept.
    warnings = [];
    const later = await loadSecrets(input());
    expect(warnings.map((w) => w.obj)).toEqual([
      { generated: ['MVP_JWT_SIGNING_KEY', 'MVP_BLIND_INDEX_KEY'], file: file() },
    ]);
    const restored = await readStored();
    expect(restored.dataKeys).toEqual(stored.dataKeys);
    expect(later.fieldKeys.dataKeys[0]!.id).toBe((stored.dataKeys as { id: string }[])[0]!.id);
    expect((await stat(file())).mode & 0o777).toBe(0o600);
  });

  it('two processes starting on an empty data dir end up with the same keys', async () => {
    const [a, b] = await Promise.all([loadSecrets(input()), loadSecrets(input())]);
    expect(a).toEqual(b);
    expect(await readdir(path.join(dir, 'data'))).toEqual(['secrets.json']);
    expect(warnings).toHaveLength(1);
  });

  describe('refuses bad values with an error naming the variable, never the value', () => {
    const secret = 'SUPERSECRETVALUE';
    it.each<[string, Partial<LoadSecretsInput>, RegExp]>([
      [
        'signing key not JSON',
        { jwtSigningKey: `{${secret}` },
        /^MVP_JWT_SIGNING_KEY: not valid JSON$/,
      ],
      [
        'signing key not an object',
        { jwtSigningKey: `["${secret}"]` },
        /^MVP_JWT_SIGNING_KEY: must be a JWK/,
      ],
      [
        'signing key without d',
        {
          jwtSigningKey: JSON.stringify({
            kty: 'OKP',
            crv: 'Ed25519',
            x: 'A'.repeat(43),
            kid: secret,
          }),
        },
        /^MVP_JWT_SIGNING_KEY: needs d/,
      ],
      ['verify keys not JSON', { jwtVerifyKeys: secret }, /^MVP_JWT_VERIFY_KEYS: not valid JSON$/],
      [
        'verify keys not an array',
        { jwtVerifyKeys: `{"k":"${secret}"}` },
        /^MVP_JWT_VERIFY_KEYS: expected a JSON array/,
      ],
      [
        'verify key not Ed25519',
        { jwtVerifyKeys: `[{"kty":"RSA","n":"${secret}"}]` },
        /^MVP_JWT_VERIFY_KEYS\[0\]: must be an Ed25519/,
      ],
      ['no data keys', { dataKeys: [] }, /^MVP_DATA_KEYS: expected at least one/],
      [
        'short data key',
        { dataKeys: [{ id: 'a', key: Buffer.from(secret).toString('base64') }] },
        /^MVP_DATA_KEYS\[0\] \(a\): expected a 32-byte key/,
      ],
      [
        'bad data key id',
        { dataKeys: [{ id: 'a.b', key: b64() }] },
        /^MVP_DATA_KEYS\[0\]: id must match/,
      ],
      [
        'duplicate data key id',
        {
          dataKeys: [
            { id: 'a', key: b64() },
            { id: 'a', key: b64() },
          ],
        },
        /^MVP_DATA_KEYS: duplicate key id a/,
      ],
      [
        'blind index key not base64',
        { blindIndexKey: `${secret}!` },
        /^MVP_BLIND_INDEX_KEY: expected a 32-byte key/,
      ],
    ])('%s', async (_name, over, message) => {
      const error = await errorOf(loadSecrets(input(over)));
      expect(error.message).toMatch(message);
      expect(error.message).not.toContain(secret);
      // Nothing was generated or written because of a bad environment.
      expect(await readdir(dir)).toEqual([]);
    });

    it('a blind index key equal to a data key', async () => {
      const key = b64();
      const error = await errorOf(
        loadSecrets(input({ dataKeys: [{ id: 'a', key }], blindIndexKey: key })),
      );
      expect(error.message).toMatch(/^MVP_DATA_KEYS \/ MVP_BLIND_INDEX_KEY: .*must differ/);
      expect(error.message).not.toContain(key);
    });

    it('a verify key with the signing key kid', async () => {
      const signing = await generateSigningKey();
      const { d: _d, ...pub } = signing;
      const error = await errorOf(
        loadSecrets(
          input({ jwtSigningKey: JSON.stringify(signing), jwtVerifyKeys: JSON.stringify([pub]) }),
        ),
      );
      expect(error.message).toMatch(/^MVP_JWT_VERIFY_KEYS: kid .* is the signing key's kid/);
    });

    it('a corrupt secrets.json: clear error naming the file, and it is left alone', async () => {
      await loadSecrets(input());
      const good = await readStored();
      const key = good.blindIndexKey as string;
      await writeFile(file(), `{"version":1,"blindIndexKey":"${key}"`);
      const notJson = await errorOf(loadSecrets(input()));
      expect(notJson.message).toBe(`${file()}: not valid JSON`);
      expect(await readFile(file(), 'utf8')).toBe(`{"version":1,"blindIndexKey":"${key}"`);

      await writeFile(file(), JSON.stringify({ ...good, blindIndexKey: 'short' }));
      const badField = await errorOf(loadSecrets(input()));
      expect(badField.message).toMatch(
        /^MVP_BLIND_INDEX_KEY \(field blindIndexKey of .*secrets\.json\)/,
      );

      await writeFile(file(), JSON.stringify({ ...good, version: 2 }));
      expect((await errorOf(loadSecrets(input()))).message).toMatch(/version/);
      expect(warnings).toHaveLength(1);
    });
  });
});
