import { randomBytes } from '../base64';

/**
 * A new call's id, made here rather than by the server so that each sealed offer can name its
 * call (see `openOffer`): a UUIDv7 (RFC 9562), the time in its first 48 bits, so the server's
 * history still sorts by id. Written here, not taken from the `uuidv7` package: that one falls
 * back to Math.random without crypto.getRandomValues, and these ids must not be guessable.
 */
export function newCallId(now = Date.now()): string {
  const bytes = randomBytes(16);
  for (let i = 0; i < 6; i++) bytes[i] = Math.floor(now / 2 ** (8 * (5 - i))) % 256;
  bytes[6] = 0x70 | (bytes[6]! & 0x0f); // version 7
  bytes[8] = 0x80 | (bytes[8]! & 0x3f); // variant 10
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** The milliseconds a call id was made at (its first 48 bits); NaN when it is no UUIDv7. */
export function timeOfCallId(id: string): number {
  if (!/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/i.test(id))
    return NaN;
  return parseInt(id.slice(0, 8) + id.slice(9, 13), 16);
}
