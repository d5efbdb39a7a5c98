import { createCipheriv, createDecipheriv, createHmac, randomBytes } from 'node:crypto';

/**
 * Encryption of personal data at rest (phone numbers, display names).
 *
 * AES-256-GCM with a random 96-bit IV per value. The caller's context string (e.g.
 * `users.phone:<userId>`) is authenticated as AAD, so a ciphertext copied into another row or
 * column fails to decrypt instead of silently showing someone else's data. The key id stays
 * readable in the stored value so that a rotation job can find rows still under an old key.
 *
 * Stored form: `v1.<keyId>.<base64url(iv | ciphertext | tag)>`.
 */
export type DataKey = { id: string; key: Uint8Array };
export type FieldCipherKeys = { dataKeys: DataKey[]; blindIndexKey: Uint8Array };
export type FieldCipher = {
  /** The id of dataKeys[0], which every new ciphertext uses (lets a job query for older rows). */
  readonly currentKeyId: string;
  encrypt(plaintext: string, context: string): string;
  decrypt(ciphertext: string, context: string): string;
  keyIdOf(ciphertext: string): string;
  /** False for a value under an older key, and for anything that is not a valid ciphertext. */
  isCurrent(ciphertext: string): boolean;
  blindIndex(value: string, purpose: string): string;
};

const VERSION = 'v1';
const KEY_ID = /^[A-Za-z0-9_-]{1,16}$/;
const BASE64URL = /^[A-Za-z0-9_-]+$/;
const KEY_BYTES = 32;
const IV_BYTES = 12;
const TAG_BYTES = 16;
// In unicode mode this matches only unpaired surrogates: UTF-8 cannot carry them, so encoding
// would silently turn them into U+FFFD and a round trip would not return the input.
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;

function fail(reason: string): never {
  // Never include the ciphertext or context: both end up in logs.
  throw new Error(`field cipher: ${reason}`);
}

function checkText(value: string, what: string): void {
  if (typeof value !== 'string') fail(`${what} must be a string`);
  if (LONE_SURROGATE.test(value)) fail(`${what} is not well-formed Unicode`);
}

function checkContext(context: string): void {
  checkText(context, 'context');
  if (context.length === 0) fail('context must not be empty');
}

type Parsed = { keyId: string; payload: Buffer };

function parse(ciphertext: string): Parsed {
  if (typeof ciphertext !== 'string') fail('malformed ciphertext');
  const parts = ciphertext.split('.');
  if (parts.length !== 3) fail('malformed ciphertext');
  const [version, keyId, body] = parts as [string, string, string];
  if (version !== VERSION) fail('unsupported ciphertext version');
  if (!KEY_ID.test(keyId)) fail('malformed ciphertext');
  if (!BASE64URL.test(body)) fail('malformed ciphertext');
  const payload = Buffer.from(body, 'base64url');
  // Canonical encoding only, so that one value has exactly one stored form.
  if (payload.toString('base64url') !== body) fail('malformed ciphertext');
  if (payload.length < IV_BYTES + TAG_BYTES) fail('malformed ciphertext');
  return { keyId, payload };
}

function copyKey(key: unknown, what: string): Buffer {
  if (!(key instanceof Uint8Array) || key.length !== KEY_BYTES) {
    fail(`${what} must be ${KEY_BYTES} bytes`);
  }
  // A private copy: later changes to the caller's array must not change our keys.
  return Buffer.from(key);
}

export function createFieldCipher(keys: FieldCipherKeys): FieldCipher {
  const { dataKeys, blindIndexKey } = keys;
  if (!Array.isArray(dataKeys) || dataKeys.length === 0) fail('at least one data key is required');
  const byId = new Map<string, Buffer>();
  for (const { id, key } of dataKeys) {
    if (typeof id !== 'string' || !KEY_ID.test(id)) {
      fail('data key ids must match /^[A-Za-z0-9_-]{1,16}$/');
    }
    if (byId.has(id)) fail(`duplicate data key id ${id}`);
    byId.set(id, copyKey(key, `data key ${id}`));
  }
  const indexKey = copyKey(blindIndexKey, 'blind index key');
  for (const [id, key] of byId) {
    // Reusing one key for two algorithms voids the security argument of both.
    if (key.equals(indexKey)) fail(`blind index key must differ from data key ${id}`);
  }
  const currentId = dataKeys[0]!.id;
  const currentKey = byId.get(currentId)!;

  return {
    currentKeyId: currentId,

    encrypt(plaintext, context) {
      checkText(plaintext, 'plaintext');
      checkContext(context);
      const iv = randomBytes(IV_BYTES);
      const cipher = createCipheriv('aes-256-gcm', currentKey, iv, { authTagLength: TAG_BYTES });
      cipher.setAAD(Buffer.from(context, 'utf8'));
      const body = Buffer.concat([
        iv,
        cipher.update(plaintext, 'utf8'),
        cipher.final(),
        cipher.getAuthTag(),
      ]);
      return `${VERSION}.${currentId}.${body.toString('base64url')}`;
    },

    decrypt(ciphertext, context) {
      checkContext(context);
      const { keyId, payload } = parse(ciphertext);
      const key = byId.get(keyId);
      if (!key) fail(`unknown data key id ${keyId}`);
      const iv = payload.subarray(0, IV_BYTES);
      const tag = payload.subarray(payload.length - TAG_BYTES);
      const data = payload.subarray(IV_BYTES, payload.length - TAG_BYTES);
      const decipher = createDecipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES });
      decipher.setAAD(Buffer.from(context, 'utf8'));
      decipher.setAuthTag(tag);
      try {
        return Buffer.concat([decipher.update(data), decipher.final()]).toString('utf8');
      } catch {
        fail('authentication failed (tampered, wrong key or wrong context)');
      }
    },

    keyIdOf(ciphertext) {
      return parse(ciphertext).keyId;
    },

    isCurrent(ciphertext) {
      try {
        return parse(ciphertext).keyId === currentId;
      } catch {
        return false;
      }
    },

    blindIndex(value, purpose) {
      checkText(value, 'value');
      checkText(purpose, 'purpose');
      // The NUL separator is only unambiguous if the purpose cannot contain one.
      if (purpose.length === 0 || purpose.includes('\0')) {
        fail('purpose must be non-empty and contain no NUL');
      }
      return createHmac('sha256', indexKey).update(`${purpose}\0${value}`, 'utf8').digest('hex');
    },
  };
}
