import { CryptoError } from './errors.js';

type RandomSource = { getRandomValues<T extends ArrayBufferView | null>(array: T): T };

// getRandomValues fills at most 65536 bytes per call (Web Crypto's quota).
const MAX_CHUNK = 65_536;

function source(): RandomSource {
  const candidate = (globalThis as { crypto?: Partial<RandomSource> }).crypto;
  if (!candidate || typeof candidate.getRandomValues !== 'function') {
    throw new CryptoError(
      'NO_SECURE_RANDOM',
      'crypto.getRandomValues is not available: install a secure random polyfill ' +
        '(react-native-get-random-values on React Native); @mvp/crypto never falls back',
    );
  }
  return candidate as RandomSource;
}

/** `length` bytes from the platform CSPRNG, the only source of randomness in this package. */
export function randomBytes(length: number): Uint8Array {
  const rng = source();
  const out = new Uint8Array(length);
  for (let offset = 0; offset < length; offset += MAX_CHUNK) {
    rng.getRandomValues(out.subarray(offset, Math.min(length, offset + MAX_CHUNK)));
  }
  return out;
}
