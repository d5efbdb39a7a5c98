// Hand-written rather than a dependency or Buffer/atob: Buffer is Node-only, `atob`/`btoa` work on
// "binary strings" and are missing on older React Native engines, and a tiny, tested codec is
// less to audit than a package. Ciphertexts are at most a few hundred KiB, so plain loops do.
const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const LOOKUP = new Int16Array(128).fill(-1);
for (let i = 0; i < ALPHABET.length; i++) LOOKUP[ALPHABET.charCodeAt(i)] = i;

/** Standard base64 with padding (RFC 4648 §4), the form the server accepts and answers. */
export function bytesToBase64(bytes: Uint8Array): string {
  let out = '';
  let i = 0;
  for (; i + 2 < bytes.length; i += 3) {
    const n = (bytes[i]! << 16) | (bytes[i + 1]! << 8) | bytes[i + 2]!;
    out +=
      ALPHABET[n >> 18]! + ALPHABET[(n >> 12) & 63]! + ALPHABET[(n >> 6) & 63]! + ALPHABET[n & 63]!;
  }
  const rest = bytes.length - i;
  if (rest === 1) {
    const n = bytes[i]! << 16;
    out += `${ALPHABET[n >> 18]!}${ALPHABET[(n >> 12) & 63]!}==`;
  } else if (rest === 2) {
    const n = (bytes[i]! << 16) | (bytes[i + 1]! << 8);
    out += `${ALPHABET[n >> 18]!}${ALPHABET[(n >> 12) & 63]!}${ALPHABET[(n >> 6) & 63]!}=`;
  }
  return out;
}

/** Strict: anything but padded standard base64 throws, so corrupt data never decodes quietly. */
export function base64ToBytes(text: string): Uint8Array {
  if (text.length % 4 !== 0) throw new Error('base64: length is not a multiple of 4');
  const padding = text.endsWith('==') ? 2 : text.endsWith('=') ? 1 : 0;
  const out = new Uint8Array((text.length / 4) * 3 - padding);
  let o = 0;
  for (let i = 0; i < text.length; i += 4) {
    let n = 0;
    for (let j = 0; j < 4; j++) {
      const code = text.charCodeAt(i + j);
      const isPad = code === 61 && i + j >= text.length - padding;
      const value = isPad ? 0 : code < 128 ? LOOKUP[code]! : -1;
      if (value < 0) throw new Error('base64: invalid character');
      n = (n << 6) | value;
    }
    if (o < out.length) out[o++] = (n >> 16) & 255;
    if (o < out.length) out[o++] = (n >> 8) & 255;
    if (o < out.length) out[o++] = n & 255;
  }
  return out;
}

/** A JWT's claims, read without checking the token (the server does that); undefined if not one. */
function claimsOf(token: string): Record<string, unknown> | undefined {
  const payload = token.split('.')[1];
  if (payload === undefined) return undefined;
  try {
    const standard = payload.replace(/-/g, '+').replace(/_/g, '/');
    const bytes = base64ToBytes(standard.padEnd(Math.ceil(standard.length / 4) * 4, '='));
    // The claims read here are ASCII; other bytes only garble claims that are not.
    const claims: unknown = JSON.parse(String.fromCharCode(...bytes));
    return typeof claims === 'object' && claims !== null
      ? (claims as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The user id (`sub`) an access token names, read from the token itself: undefined if it is not
 * a JWT with a string `sub`. Access tokens are EdDSA JWTs whose `sub` is the user id; reading it
 * here needs no network, so an offline app knows whose its token is.
 */
export function subjectOf(token: string): string | undefined {
  const sub = claimsOf(token)?.sub;
  return typeof sub === 'string' ? sub : undefined;
}

/**
 * When the server issued an access token (its `iat`, on the server's clock, in ms): undefined if
 * it is not a JWT with a numeric `iat`.
 */
export function issuedAtOf(token: string): number | undefined {
  const iat = claimsOf(token)?.iat;
  return typeof iat === 'number' && Number.isFinite(iat) ? iat * 1000 : undefined;
}

/**
 * `n` random bytes, only from `crypto.getRandomValues`: without it this refuses to run (no
 * weaker fallback, as the ids made from these must not be guessable).
 */
export function randomBytes(n: number): Uint8Array {
  const crypto = (globalThis as { crypto?: { getRandomValues?: (a: Uint8Array) => Uint8Array } })
    .crypto;
  if (typeof crypto?.getRandomValues !== 'function') {
    throw new Error(
      '@mvp/sdk: crypto.getRandomValues is missing (React Native: import "react-native-get-random-values" first)',
    );
  }
  return crypto.getRandomValues(new Uint8Array(n));
}

/** A random id safe in URLs and the server's client-message-id alphabet (base64url, 22 chars, 128 bits). */
export function randomId(): string {
  return bytesToBase64(randomBytes(16)).slice(0, 22).replace(/\+/g, '-').replace(/\//g, '_');
}
