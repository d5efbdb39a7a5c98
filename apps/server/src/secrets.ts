import { randomBytes } from 'node:crypto';
import { link, mkdir, open, readFile, rename, unlink } from 'node:fs/promises';
import path from 'node:path';
import {
  createFieldCipher,
  generateSigningKey,
  signingKeyProblem,
  verifyKeyProblem,
  type FieldCipherKeys,
} from '@mvp/api';

/**
 * The server's keys: from the environment when given (production), otherwise from
 * `<dataDir>/secrets.json`, generated there on first start so the embedded setup needs no
 * configuration. Losing that file makes encrypted personal data unreadable and signs everyone
 * out, hence the warning when it is created.
 *
 * Error messages name the variable (or file field) at fault and never contain a value: they are
 * printed at startup, where logs are collected. That includes JSON.parse's message, which quotes
 * the input.
 */
export type ServerSecrets = {
  fieldKeys: FieldCipherKeys;
  jwtSigningKey: Record<string, unknown>;
  jwtVerifyKeys: Record<string, unknown>[];
};

export type LoadSecretsInput = {
  dataDir: string;
  /** JSON of a private Ed25519 JWK (MVP_JWT_SIGNING_KEY). */
  jwtSigningKey: string | undefined;
  /** JSON array of public JWKs (MVP_JWT_VERIFY_KEYS). */
  jwtVerifyKeys: string | undefined;
  /** Base64 keys, newest first (MVP_DATA_KEYS). */
  dataKeys: { id: string; key: string }[] | undefined;
  /** Base64 (MVP_BLIND_INDEX_KEY). */
  blindIndexKey: string | undefined;
  logger: { warn(obj: object, msg: string): void };
};

type Jwk = Record<string, unknown>;
type StoredDataKey = { id: string; key: string };
/** The file format. Fields are optional: those given by the environment are not stored. */
type SecretsFile = {
  version: 1;
  jwtSigningKey?: Jwk;
  jwtVerifyKeys?: Jwk[];
  dataKeys?: StoredDataKey[];
  blindIndexKey?: string;
};

const FILE_NAME = 'secrets.json';
const KEY_ID = /^[A-Za-z0-9_-]{1,16}$/;
// 32 bytes: 43 characters plus optional padding, standard or URL-safe alphabet.
const BASE64_32 = /^[A-Za-z0-9+/_-]{43}=?$/;

const VAR = {
  jwtSigningKey: 'MVP_JWT_SIGNING_KEY',
  jwtVerifyKeys: 'MVP_JWT_VERIFY_KEYS',
  dataKeys: 'MVP_DATA_KEYS',
  blindIndexKey: 'MVP_BLIND_INDEX_KEY',
} as const;
type Field = keyof typeof VAR;

/** Where a value came from, for error messages. */
type Source = (field: Field) => string;
const fromEnv: Source = (field) => VAR[field];
const fromFile =
  (file: string): Source =>
  (field) =>
    `${VAR[field]} (field ${field} of ${file})`;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function parseJson(text: string, name: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new Error(`${name}: not valid JSON`);
  }
}

function decodeKey(value: unknown, name: string): Buffer {
  if (typeof value !== 'string' || !BASE64_32.test(value)) {
    throw new Error(`${name}: expected a 32-byte key, base64`);
  }
  return Buffer.from(value.replace(/=$/, ''), 'base64');
}

function checkSigningKey(jwk: unknown, name: string): Jwk {
  const problem = signingKeyProblem(jwk);
  if (problem) throw new Error(`${name}: ${problem}`);
  return jwk as Jwk;
}

function checkVerifyKeys(value: unknown, name: string): Jwk[] {
  if (!Array.isArray(value)) throw new Error(`${name}: expected a JSON array of public JWKs`);
  return value.map((jwk: unknown, i) => {
    const problem = verifyKeyProblem(jwk);
    if (problem) throw new Error(`${name}[${i}]: ${problem}`);
    return jwk as Jwk;
  });
}

function checkDataKeys(value: unknown, name: string): StoredDataKey[] {
  if (!Array.isArray(value) || value.length === 0) {
    throw new Error(`${name}: expected at least one id:key pair`);
  }
  const ids = new Set<string>();
  return value.map((entry: unknown, i) => {
    if (!isRecord(entry) || typeof entry.id !== 'string' || !KEY_ID.test(entry.id)) {
      throw new Error(`${name}[${i}]: id must match /^[A-Za-z0-9_-]{1,16}$/`);
    }
    if (ids.has(entry.id)) throw new Error(`${name}: duplicate key id ${entry.id}`);
    ids.add(entry.id);
    decodeKey(entry.key, `${name}[${i}] (${entry.id})`);
    return { id: entry.id, key: entry.key as string };
  });
}

async function readSecretsFile(file: string): Promise<SecretsFile | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  const data = parseJson(text, file);
  if (!isRecord(data) || data.version !== 1)
    throw new Error(`${file}: expected { "version": 1, … }`);
  const source = fromFile(file);
  const stored: SecretsFile = { version: 1 };
  if (data.jwtSigningKey !== undefined) {
    stored.jwtSigningKey = checkSigningKey(data.jwtSigningKey, source('jwtSigningKey'));
  }
  if (data.jwtVerifyKeys !== undefined) {
    stored.jwtVerifyKeys = checkVerifyKeys(data.jwtVerifyKeys, source('jwtVerifyKeys'));
  }
  if (data.dataKeys !== undefined) {
    stored.dataKeys = checkDataKeys(data.dataKeys, source('dataKeys'));
  }
  if (data.blindIndexKey !== undefined) {
    decodeKey(data.blindIndexKey, source('blindIndexKey'));
    stored.blindIndexKey = data.blindIndexKey as string;
  }
  return stored;
}

const LINK_UNSUPPORTED = new Set(['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS']);

/**
 * Writes the whole file to a private temp file, then moves it into place, so a crash never
 * leaves a half-written secrets file. A first creation uses link(), which fails if the file
 * appeared meanwhile: two processes starting on an empty data dir must not each keep different
 * keys. Returns false when another process won that race.
 */
async function writeSecretsFile(
  file: string,
  data: SecretsFile,
  create: boolean,
): Promise<boolean> {
  const tmp = `${file}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  const handle = await open(tmp, 'wx', 0o600);
  try {
    await handle.writeFile(`${JSON.stringify(data, null, 2)}\n`);
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    if (create) {
      try {
        await link(tmp, file);
        return true;
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code ?? '';
        if (code === 'EEXIST') return false;
        if (!LINK_UNSUPPORTED.has(code)) throw error;
      }
    }
    await rename(tmp, file);
    return true;
  } finally {
    await unlink(tmp).catch(() => undefined);
  }
}

type EnvSecrets = {
  jwtSigningKey?: Jwk;
  jwtVerifyKeys?: Jwk[];
  dataKeys?: StoredDataKey[];
  blindIndexKey?: string;
};

function parseEnvSecrets(input: LoadSecretsInput): EnvSecrets {
  const env: EnvSecrets = {};
  if (input.jwtSigningKey !== undefined) {
    const name = fromEnv('jwtSigningKey');
    env.jwtSigningKey = checkSigningKey(parseJson(input.jwtSigningKey, name), name);
  }
  if (input.jwtVerifyKeys !== undefined) {
    const name = fromEnv('jwtVerifyKeys');
    env.jwtVerifyKeys = checkVerifyKeys(parseJson(input.jwtVerifyKeys, name), name);
  }
  if (input.dataKeys !== undefined)
    env.dataKeys = checkDataKeys(input.dataKeys, fromEnv('dataKeys'));
  if (input.blindIndexKey !== undefined) {
    decodeKey(input.blindIndexKey, fromEnv('blindIndexKey'));
    env.blindIndexKey = input.blindIndexKey;
  }
  return env;
}

const newKey = () => randomBytes(32).toString('base64');

function toServerSecrets(
  signing: Jwk,
  verifyKeys: Jwk[],
  dataKeys: StoredDataKey[],
  blindIndexKey: string,
): ServerSecrets {
  const clash = verifyKeys.find((k) => k.kid === signing.kid);
  if (clash) {
    throw new Error(`${VAR.jwtVerifyKeys}: kid ${String(clash.kid)} is the signing key's kid`);
  }
  const fieldKeys: FieldCipherKeys = {
    dataKeys: dataKeys.map(({ id, key }) => ({ id, key: decodeKey(key, VAR.dataKeys) })),
    blindIndexKey: decodeKey(blindIndexKey, VAR.blindIndexKey),
  };
  try {
    createFieldCipher(fieldKeys);
  } catch (error) {
    // e.g. the blind index key equals a data key; the cipher's message names no key material.
    throw new Error(`${VAR.dataKeys} / ${VAR.blindIndexKey}: ${(error as Error).message}`);
  }
  return { fieldKeys, jwtSigningKey: signing, jwtVerifyKeys: verifyKeys };
}

export async function loadSecrets(input: LoadSecretsInput): Promise<ServerSecrets> {
  // Bad environment values fail before anything touches the disk.
  const env = parseEnvSecrets(input);
  const file = path.join(input.dataDir, FILE_NAME);

  // A second round only when another process created the file while we were generating.
  for (let round = 0; round < 2; round += 1) {
    const stored = await readSecretsFile(file);
    const next: SecretsFile = { ...stored, version: 1 };
    const generated: string[] = [];

    let signing = env.jwtSigningKey ?? stored?.jwtSigningKey;
    if (!signing) {
      signing = await generateSigningKey();
      next.jwtSigningKey = signing;
      generated.push(VAR.jwtSigningKey);
    }
    let dataKeys = env.dataKeys ?? stored?.dataKeys;
    if (!dataKeys) {
      dataKeys = [{ id: `k${randomBytes(6).toString('base64url')}`, key: newKey() }];
      next.dataKeys = dataKeys;
      generated.push(VAR.dataKeys);
    }
    let blindIndexKey = env.blindIndexKey ?? stored?.blindIndexKey;
    if (!blindIndexKey) {
      blindIndexKey = newKey();
      next.blindIndexKey = blindIndexKey;
      generated.push(VAR.blindIndexKey);
    }
    const verifyKeys = env.jwtVerifyKeys ?? stored?.jwtVerifyKeys ?? [];
    const secrets = toServerSecrets(signing, verifyKeys, dataKeys, blindIndexKey);

    if (generated.length === 0) return secrets;
    await mkdir(input.dataDir, { recursive: true, mode: 0o700 });
    if (!(await writeSecretsFile(file, next, stored === undefined))) continue;
    input.logger.warn(
      { generated, file },
      'generated new secrets and stored them in the data directory: back this file up (losing it makes encrypted data unreadable and signs everyone out), or set these variables in production',
    );
    return secrets;
  }
  throw new Error(`${file}: changed repeatedly while loading secrets`);
}
