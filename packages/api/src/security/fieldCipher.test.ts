import { createCipheriv, createHmac, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { createFieldCipher, type FieldCipherKeys } from './fieldCipher';

const key = (fill: number) => new Uint8Array(32).fill(fill);
const keys = (over: Partial<FieldCipherKeys> = {}): FieldCipherKeys => ({
  dataKeys: [{ id: 'k2', key: key(2) }],
  blindIndexKey: key(9),
  ...over,
});
const CTX = 'users.phone:u1';

/** Replaces one base64url character of the body, keeping the encoding canonical. */
function flipBodyByte(ciphertext: string, index: number): string {
  const [v, id, body] = ciphertext.split('.') as [string, string, string];
  const bytes = Buffer.from(body, 'base64url');
  bytes[index] = bytes[index]! ^ 0x01;
  return `${v}.${id}.${bytes.toString('base64url')}`;
}

describe('createFieldCipher', () => {
  it('round-trips text, including empty and non-ASCII, in the documented format', () => {
    const cipher = createFieldCipher(keys());
    for (const text of ['+4915112345678', '', 'Zoë 🦊 山田']) {
      const ct = cipher.encrypt(text, CTX);
      expect(ct).toMatch(/^v1\.k2\.[A-Za-z0-9_-]+$/);
      expect(ct).not.toContain(text || '\u0000');
      expect(cipher.decrypt(ct, CTX)).toBe(text);
    }
  });

  it('uses a fresh IV: the same value encrypts differently each time', () => {
    const cipher = createFieldCipher(keys());
    const a = cipher.encrypt('same', CTX);
    const b = cipher.encrypt('same', CTX);
    expect(a).not.toBe(b);
    expect(Buffer.from(a.split('.')[2]!, 'base64url').subarray(0, 12)).not.toEqual(
      Buffer.from(b.split('.')[2]!, 'base64url').subarray(0, 12),
    );
  });

  it('is standard AES-256-GCM with the context as AAD (interoperable layout iv|ct|tag)', () => {
    const iv = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', key(2), iv);
    c.setAAD(Buffer.from(CTX));
    const body = Buffer.concat([iv, c.update('hello', 'utf8'), c.final(), c.getAuthTag()]);
    const cipher = createFieldCipher(keys());
    expect(cipher.decrypt(`v1.k2.${body.toString('base64url')}`, CTX)).toBe('hello');
  });

  it('refuses a ciphertext moved to another row or column (wrong context)', () => {
    const cipher = createFieldCipher(keys());
    const ct = cipher.encrypt('+4915112345678', 'users.phone:u1');
    expect(() => cipher.decrypt(ct, 'users.phone:u2')).toThrow(/authentication failed/);
    expect(() => cipher.decrypt(ct, 'users.displayName:u1')).toThrow(/authentication failed/);
  });

  it('refuses tampered IV, ciphertext and tag, and never echoes the value', () => {
    const cipher = createFieldCipher(keys());
    const ct = cipher.encrypt('secret-name', CTX);
    const len = Buffer.from(ct.split('.')[2]!, 'base64url').length;
    for (const index of [0, 11, 12, len - 17, len - 16, len - 1]) {
      const tampered = flipBodyByte(ct, index);
      expect(tampered).not.toBe(ct);
      expect(() => cipher.decrypt(tampered, CTX)).toThrow(/authentication failed/);
    }
    // Truncated body (tag cut off) and a body with bytes appended.
    const [v, id, body] = ct.split('.') as [string, string, string];
    const bytes = Buffer.from(body, 'base64url');
    const short = `${v}.${id}.${bytes.subarray(0, bytes.length - 1).toString('base64url')}`;
    const long = `${v}.${id}.${Buffer.concat([bytes, Buffer.from([0])]).toString('base64url')}`;
    expect(() => cipher.decrypt(short, CTX)).toThrow();
    expect(() => cipher.decrypt(long, CTX)).toThrow();
    const error = (() => {
      try {
        cipher.decrypt(flipBodyByte(ct, 12), CTX);
      } catch (e) {
        return e as Error;
      }
      throw new Error('expected decrypt to throw');
    })();
    expect(error.message).not.toContain(ct.split('.')[2]!);
    expect(error.message).not.toContain(CTX);
  });

  it('refuses a ciphertext relabelled with another key id', () => {
    const cipher = createFieldCipher(
      keys({
        dataKeys: [
          { id: 'k2', key: key(2) },
          { id: 'k1', key: key(1) },
        ],
      }),
    );
    const ct = cipher.encrypt('x', CTX);
    expect(() => cipher.decrypt(ct.replace('.k2.', '.k1.'), CTX)).toThrow(/authentication/);
    expect(() => cipher.decrypt(ct.replace('.k2.', '.k9.'), CTX)).toThrow(/unknown data key id/);
  });

  // 28 zero bytes (IV + tag, empty plaintext) take 38 base64url characters, the last with 4 spare bits.
  const Z = 'A'.repeat(38);
  it.each([
    ['empty', ''],
    ['no dots', 'garbage'],
    ['wrong version', `v2.k2.${Z}`],
    ['bad key id', `v1.k!.${Z}`],
    ['empty key id', `v1..${Z}`],
    ['too many parts', `v1.k2.${Z}.${Z}`],
    ['not base64url', `v1.k2.${Z.slice(2)}+/`],
    ['padding', `v1.k2.${Z}==`],
    ['too short', 'v1.k2.AAAA'],
    ['non-canonical base64url', `v1.k2.${Z.slice(1)}B`],
  ])('refuses a malformed ciphertext (%s)', (_name, bad) => {
    const cipher = createFieldCipher(keys());
    expect(() => cipher.decrypt(bad, CTX)).toThrow(/malformed|unsupported/);
    expect(cipher.isCurrent(bad)).toBe(false);
  });

  it('refuses bad input to encrypt and decrypt', () => {
    const cipher = createFieldCipher(keys());
    const ct = cipher.encrypt('x', CTX);
    expect(() => cipher.encrypt('x', '')).toThrow(/context/);
    expect(() => cipher.decrypt(ct, '')).toThrow(/context/);
    expect(() => cipher.encrypt('bad \uD800 surrogate', CTX)).toThrow(/well-formed/);
    expect(() => cipher.encrypt(42 as unknown as string, CTX)).toThrow(/string/);
    expect(() => cipher.decrypt(null as unknown as string, CTX)).toThrow(/malformed/);
  });

  it('supports rotation: old keys decrypt, only dataKeys[0] encrypts, key ids stay visible', () => {
    const before = createFieldCipher(keys({ dataKeys: [{ id: 'old', key: key(1) }] }));
    const oldCt = before.encrypt('+4915112345678', CTX);
    const after = createFieldCipher(
      keys({
        dataKeys: [
          { id: 'new', key: key(2) },
          { id: 'old', key: key(1) },
        ],
      }),
    );
    expect(after.currentKeyId).toBe('new');
    expect(after.keyIdOf(oldCt)).toBe('old');
    expect(after.isCurrent(oldCt)).toBe(false);
    expect(after.decrypt(oldCt, CTX)).toBe('+4915112345678');
    const newCt = after.encrypt(after.decrypt(oldCt, CTX), CTX);
    expect(after.keyIdOf(newCt)).toBe('new');
    expect(after.isCurrent(newCt)).toBe(true);
    // Once the old key is dropped its rows are unreadable: a clear error, not garbage.
    const dropped = createFieldCipher(keys({ dataKeys: [{ id: 'new', key: key(2) }] }));
    expect(() => dropped.decrypt(oldCt, CTX)).toThrow(/unknown data key id old/);
    expect(() => dropped.keyIdOf('nope')).toThrow(/malformed/);
  });

  it('copies keys: mutating the caller array afterwards changes nothing', () => {
    const k = key(2);
    const cipher = createFieldCipher(keys({ dataKeys: [{ id: 'k2', key: k }] }));
    const ct = cipher.encrypt('x', CTX);
    k.fill(7);
    expect(cipher.decrypt(ct, CTX)).toBe('x');
  });

  describe('blindIndex', () => {
    it('is a keyed, deterministic, purpose-separated HMAC-SHA256', () => {
      const cipher = createFieldCipher(keys());
      const a = cipher.blindIndex('+4915112345678', 'users.phone');
      expect(a).toMatch(/^[0-9a-f]{64}$/);
      expect(cipher.blindIndex('+4915112345678', 'users.phone')).toBe(a);
      expect(a).toBe(
        createHmac('sha256', key(9)).update('users.phone\0+4915112345678').digest('hex'),
      );
      expect(cipher.blindIndex('+4915112345679', 'users.phone')).not.toBe(a);
      expect(cipher.blindIndex('+4915112345678', 'users.email')).not.toBe(a);
      const otherKey = createFieldCipher(keys({ blindIndexKey: key(8) }));
      expect(otherKey.blindIndex('+4915112345678', 'users.phone')).not.toBe(a);
    });

    it('does not depend on the data keys, so rotation keeps lookups working', () => {
      const a = createFieldCipher(keys()).blindIndex('v', 'p');
      const b = createFieldCipher(keys({ dataKeys: [{ id: 'x', key: key(5) }] })).blindIndex(
        'v',
        'p',
      );
      expect(a).toBe(b);
    });

    it('refuses an empty purpose or one containing NUL (ambiguous framing)', () => {
      const cipher = createFieldCipher(keys());
      expect(() => cipher.blindIndex('v', '')).toThrow(/purpose/);
      expect(() => cipher.blindIndex('b\0c', 'a')).not.toThrow();
      expect(() => cipher.blindIndex('c', 'a\0b')).toThrow(/purpose/);
    });
  });

  describe('key validation', () => {
    it.each<[string, FieldCipherKeys, RegExp]>([
      ['no data keys', keys({ dataKeys: [] }), /at least one/],
      ['short data key', keys({ dataKeys: [{ id: 'a', key: new Uint8Array(16) }] }), /32 bytes/],
      ['long data key', keys({ dataKeys: [{ id: 'a', key: new Uint8Array(33) }] }), /32 bytes/],
      ['empty id', keys({ dataKeys: [{ id: '', key: key(1) }] }), /ids must match/],
      ['id with dot', keys({ dataKeys: [{ id: 'a.b', key: key(1) }] }), /ids must match/],
      ['id too long', keys({ dataKeys: [{ id: 'a'.repeat(17), key: key(1) }] }), /ids must match/],
      [
        'duplicate ids',
        keys({
          dataKeys: [
            { id: 'a', key: key(1) },
            { id: 'a', key: key(2) },
          ],
        }),
        /duplicate/,
      ],
      ['short blind index key', keys({ blindIndexKey: new Uint8Array(31) }), /blind index key/],
      [
        'blind index key equal to a data key',
        keys({
          dataKeys: [
            { id: 'a', key: key(1) },
            { id: 'b', key: key(9) },
          ],
        }),
        /must differ from data key b/,
      ],
    ])('refuses %s', (_name, bad, message) => {
      expect(() => createFieldCipher(bad)).toThrow(message);
    });

    it('accepts the longest legal id', () => {
      const id = 'A-z_0'.repeat(3) + 'x';
      const cipher = createFieldCipher(keys({ dataKeys: [{ id, key: key(1) }] }));
      expect(cipher.keyIdOf(cipher.encrypt('x', CTX))).toBe(id);
    });
  });
});
