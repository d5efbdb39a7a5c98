import { CryptoError } from './errors.js';

export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  let length = 0;
  for (const part of parts) length += part.length;
  const out = new Uint8Array(length);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** Equality that does not stop at the first difference (for fingerprints and tags). */
export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

// Made on first use, not when the module loads: Hermes (React Native before 0.85) has no
// TextDecoder, and importing the package (the SDK does) must not fail there. Nothing here needs
// either one to load.
let encoder: { encode(text: string): Uint8Array } | undefined;
let decoder: { decode(bytes: Uint8Array): string } | undefined;

/**
 * The bytes of a protocol label (an HKDF info string), for constants made when a module loads:
 * built by hand rather than with TextEncoder, which that must not need (see above). ASCII only,
 * where UTF-8 and these bytes are the same.
 */
export function asciiBytes(label: string): Uint8Array {
  const out = new Uint8Array(label.length);
  for (let i = 0; i < label.length; i++) {
    const code = label.charCodeAt(i);
    if (code > 0x7f) throw new Error(`not an ASCII label: ${label}`);
    out[i] = code;
  }
  return out;
}

export const utf8 = {
  encode: (text: string): Uint8Array => (encoder ??= new TextEncoder()).encode(text),
  decode: (bytes: Uint8Array): string =>
    (decoder ??= new TextDecoder('utf-8', { fatal: true })).decode(bytes),
};

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const B64_INDEX = new Map([...B64].map((char, index) => [char, index]));

/** Standard base64 with padding (no Buffer, no atob: neither exists everywhere we run). */
export function toBase64(bytes: Uint8Array): string {
  let out = '';
  for (let i = 0; i < bytes.length; i += 3) {
    const a = bytes[i]!;
    const b = bytes[i + 1];
    const c = bytes[i + 2];
    out += B64[a >> 2]! + B64[((a & 3) << 4) | ((b ?? 0) >> 4)]!;
    out += b === undefined ? '=' : B64[((b & 15) << 2) | ((c ?? 0) >> 6)]!;
    out += c === undefined ? '=' : B64[c & 63]!;
  }
  return out;
}

export function fromBase64(text: string): Uint8Array {
  if (text.length % 4 !== 0) throw new CryptoError('MALFORMED', 'invalid base64 length');
  const padding = text.endsWith('==') ? 2 : text.endsWith('=') ? 1 : 0;
  const out = new Uint8Array((text.length / 4) * 3 - padding);
  let o = 0;
  for (let i = 0; i < text.length; i += 4) {
    let chunk = 0;
    for (let j = 0; j < 4; j++) {
      const char = text[i + j]!;
      const value = char === '=' && i + j >= text.length - padding ? 0 : B64_INDEX.get(char);
      if (value === undefined) throw new CryptoError('MALFORMED', 'invalid base64 character');
      chunk = (chunk << 6) | value;
    }
    if (o < out.length) out[o++] = (chunk >> 16) & 255;
    if (o < out.length) out[o++] = (chunk >> 8) & 255;
    if (o < out.length) out[o++] = chunk & 255;
  }
  return out;
}

/** Appends fixed-size fields for the wire formats (big-endian integers). */
export function writer() {
  const parts: Uint8Array[] = [];
  const self = {
    u8(value: number) {
      parts.push(Uint8Array.of(value));
      return self;
    },
    u32(value: number) {
      const out = new Uint8Array(4);
      new DataView(out.buffer).setUint32(0, value);
      parts.push(out);
      return self;
    },
    bytes(value: Uint8Array) {
      parts.push(value);
      return self;
    },
    finish: () => concatBytes(...parts),
  };
  return self;
}

/** Reads what `writer` wrote; any short read is MALFORMED, never an out-of-range access. */
export function reader(bytes: Uint8Array, what: string) {
  let offset = 0;
  const take = (length: number) => {
    if (offset + length > bytes.length) throw new CryptoError('MALFORMED', `${what} is truncated`);
    const out = bytes.slice(offset, offset + length);
    offset += length;
    return out;
  };
  return {
    u8: () => take(1)[0]!,
    u32: () => new DataView(take(4).buffer).getUint32(0),
    bytes: take,
    rest: () => take(bytes.length - offset),
    offset: () => offset,
    end() {
      if (offset !== bytes.length) throw new CryptoError('MALFORMED', `${what} has trailing bytes`);
    },
  };
}
