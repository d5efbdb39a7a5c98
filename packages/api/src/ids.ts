import { uuidv7obj } from 'uuidv7';

const DIGITS = Buffer.from('0123456789abcdef', 'latin1');
/** The text form is written here, then read out as one string (ids are made synchronously). */
const text = Buffer.alloc(36);

/**
 * A new UUIDv7 (time-ordered, monotonic within the process) in the canonical 8-4-4-4-12 text
 * form: uuidv7's id, written out in one string. The library's `toString` builds it one character
 * at a time, about 1 KB of garbage per id, and a message send makes one (bench/README,
 * session 21: a relayed message's allocations).
 */
export function newId(): string {
  const { bytes } = uuidv7obj();
  let at = 0;
  for (let i = 0; i < 16; i++) {
    if (i === 4 || i === 6 || i === 8 || i === 10) text[at++] = 0x2d; // '-'
    text[at++] = DIGITS[bytes[i]! >>> 4]!;
    text[at++] = DIGITS[bytes[i]! & 0xf]!;
  }
  return text.toString('latin1');
}
