import { describe, expect, it } from 'vitest';
import { ZBase64, ZBase64Input } from './bytes';

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const ok = (text: string) => ZBase64Input.safeParse(text).success;

describe('ZBase64Input: bytes a client sends', () => {
  it('takes what any encoder makes, one to three bytes and longer', () => {
    for (let a = 0; a < 256; a++) {
      expect(ok(Buffer.from([a]).toString('base64'))).toBe(true);
      expect(ok(Buffer.from([a, 255 - a]).toString('base64'))).toBe(true);
      expect(ok(Buffer.from([a, 7, 255 - a]).toString('base64'))).toBe(true);
    }
    expect(ok(Buffer.from('a longer message of bytes').toString('base64'))).toBe(true);
  });

  it('refuses no bytes, and every spelling of a byte but the canonical one', () => {
    expect(ok('')).toBe(false);
    expect(ZBase64.safeParse('').success).toBe(true); // answers stored before still read
    let refused = 0;
    for (const last of ALPHABET) {
      // One byte: "Q?==" decodes the same whatever the low four bits of `?` are.
      const one = `Q${last}==`;
      expect(ok(one)).toBe(Buffer.from(Buffer.from(one, 'base64')).toString('base64') === one);
      // Two bytes: "QU?=", the low two bits of `?`.
      const two = `QU${last}=`;
      expect(ok(two)).toBe(Buffer.from(Buffer.from(two, 'base64')).toString('base64') === two);
      if (!ok(one)) refused++;
    }
    expect(refused).toBe(60);
    expect(ok('QR==')).toBe(false);
    expect(ok('QQ==')).toBe(true);
  });
});
