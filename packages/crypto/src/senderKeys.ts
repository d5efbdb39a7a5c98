/**
 * Sender keys for group conversations (Megolm-like, as Signal's and Matrix's group messaging):
 * each sending device has, per conversation, a chain key ratcheted with HMAC-SHA256 (the same
 * KDF_CK as the Double Ratchet) and an Ed25519 key pair that belongs to this sender key alone.
 * One ciphertext per message serves every member; members receive the chain key and the signing
 * public key in a distribution message sent through pairwise (Double Ratchet) sessions.
 *
 * Message:      version | type 3 | key id (16) | iteration (u32) | nonce (24) | ciphertext |
 *               Ed25519 signature (64) over everything before it || context
 * Distribution: version | type 4 | key id (16) | iteration (u32) | chain key (32) | signing key (32)
 *
 * AEAD AD = header (version .. iteration) || context, where context is what the SDK binds the
 * message to (conversation id, sender device). Rotation = a fresh sender key (new id, new random
 * chain, new signing key), distributed to the remaining members only.
 */
import { asciiBytes, concatBytes, equalBytes, reader, writer } from './bytes.js';
import { CryptoError } from './errors.js';
import {
  KEY_LENGTH,
  type KeyPair,
  NONCE_LENGTH,
  SIGNATURE_LENGTH,
  generateEd25519KeyPair,
  hkdf,
  open,
  seal,
  sign,
  verify,
} from './primitives.js';
import { randomBytes } from './random.js';
import { kdfChain } from './ratchet.js';
import { WIRE_VERSION, WireType } from './wire.js';

export const SENDER_KEY_ID_LENGTH = 16;
const HEADER_LENGTH = 1 + 1 + SENDER_KEY_ID_LENGTH + 4;
const MESSAGE_INFO = asciiBytes('MVP sender key message v1');
const MAX_ITERATION = 0xffffffff;

export type SenderKeyLimits = {
  /** Furthest a message's iteration may be ahead of the chain: beyond, refused. */
  maxForward: number;
  /** Most skipped message keys kept per sender key (out-of-order window); oldest dropped. */
  maxSkippedKeys: number;
};

export const DEFAULT_SENDER_KEY_LIMITS: SenderKeyLimits = {
  maxForward: 2000,
  maxSkippedKeys: 1000,
};

export type OutboundSenderKey = {
  keyId: Uint8Array;
  /** The iteration the next message will use. */
  iteration: number;
  chainKey: Uint8Array;
  signing: KeyPair;
  createdAt: number;
};

export type InboundSenderKey = {
  keyId: Uint8Array;
  /** The next iteration the chain key can derive. */
  iteration: number;
  chainKey: Uint8Array;
  signingKey: Uint8Array;
  /** Keys of messages not yet seen, oldest first. */
  skipped: { iteration: number; messageKey: Uint8Array }[];
  /** When this device stored it (ms, later keys larger); 0 before it is stored. */
  receivedAt: number;
  /**
   * The iterations noted read under this key (`withRead`, once the content is safe with the
   * app: a decryption alone does not count, since the app may stop before it keeps the result),
   * as ranges `[from, to)`, ascending and apart, at most `MAX_READ_RANGES`. A message at a place
   * read fails as `DUPLICATE_MESSAGE`; one whose key is used up or dropped but that was never
   * noted read as `MESSAGE_KEY_GONE`. Kept with the key, so a restarted app still tells a replay
   * of what it read from a message to ask about. Absent in records from before reads were kept
   * (a store may keep objects as they were written).
   */
  read?: [number, number][];
  /**
   * Retired (one of the sender's older keys): the chain and message keys are forgotten, and
   * the record stays so that the same key received again is not taken as new. Its messages
   * fail as `DUPLICATE_MESSAGE` (noted read) or `MESSAGE_KEY_GONE` (keys forgotten), or
   * `TOO_MANY_SKIPPED` from `iteration` on (still in use: a `forward` share from there brings
   * it back).
   */
  retired?: true;
};

/**
 * Read ranges kept per key. Reading in order keeps one; each message read out of order past a
 * gap adds one until the gap is read. Past this, the oldest places (other than the one just
 * read) are forgotten: a copy of one is then asked for as content, which its sender answers
 * for a day at most.
 */
export const MAX_READ_RANGES = 100;

/** Whether `iteration` was read under `key`. */
export function senderKeyRead(key: InboundSenderKey, iteration: number): boolean {
  return (key.read ?? []).some(([from, to]) => from <= iteration && iteration < to);
}

/**
 * `key` with `iteration` read: merged into the ranges (the oldest past the bound dropped), and
 * the message key for it forgotten if still held (its content came resent).
 */
export function withRead(key: InboundSenderKey, iteration: number): InboundSenderKey {
  const read: [number, number][] = [];
  let added: [number, number] = [iteration, iteration + 1];
  let placed = false;
  for (const [from, to] of key.read ?? []) {
    if (to < added[0]) read.push([from, to]);
    else if (from > added[1]) {
      if (!placed) read.push(added);
      placed = true;
      read.push([from, to]);
    } else added = [Math.min(from, added[0]), Math.max(to, added[1])];
  }
  if (!placed) read.push(added);
  // The oldest go first, but never the place just read: its key is used up here.
  while (read.length > MAX_READ_RANGES) read.splice(read[0] === added ? 1 : 0, 1);
  return { ...key, skipped: key.skipped.filter((s) => s.iteration !== iteration), read };
}

export function createSenderKey(createdAt = Date.now()): OutboundSenderKey {
  return {
    keyId: randomBytes(SENDER_KEY_ID_LENGTH),
    iteration: 0,
    chainKey: randomBytes(KEY_LENGTH),
    signing: generateEd25519KeyPair(),
    createdAt,
  };
}

/** After a member leaves or is removed: a new key they never receive. */
export const rotateSenderKey = createSenderKey;

/** The bytes to send (through pairwise sessions) to every current member device. */
export function senderKeyDistribution(key: OutboundSenderKey): Uint8Array {
  return writer()
    .u8(WIRE_VERSION)
    .u8(WireType.SenderKeyDistribution)
    .bytes(key.keyId)
    .u32(key.iteration)
    .bytes(key.chainKey)
    .bytes(key.signing.publicKey)
    .finish();
}

function readVersionAndType(r: ReturnType<typeof reader>, type: WireType, what: string): void {
  const version = r.u8();
  if (version !== WIRE_VERSION)
    throw new CryptoError('UNKNOWN_VERSION', `${what} version ${version}`);
  if (r.u8() !== type) throw new CryptoError('MALFORMED', `not a ${what}`);
}

export function processSenderKeyDistribution(bytes: Uint8Array): InboundSenderKey {
  const r = reader(bytes, 'sender key distribution');
  readVersionAndType(r, WireType.SenderKeyDistribution, 'sender key distribution');
  const key = {
    keyId: r.bytes(SENDER_KEY_ID_LENGTH),
    iteration: r.u32(),
    chainKey: r.bytes(KEY_LENGTH),
    signingKey: r.bytes(KEY_LENGTH),
    skipped: [],
    receivedAt: 0,
    read: [],
  };
  r.end();
  return key;
}

function aeadKey(messageKey: Uint8Array): Uint8Array {
  return hkdf(messageKey, undefined, MESSAGE_INFO, 32);
}

export function groupEncrypt(
  key: OutboundSenderKey,
  plaintext: Uint8Array,
  context: Uint8Array = new Uint8Array(0),
): { senderKey: OutboundSenderKey; message: Uint8Array } {
  if (key.iteration >= MAX_ITERATION) {
    throw new CryptoError('TOO_MANY_SKIPPED', 'sender key exhausted: rotate it');
  }
  const [chainKey, messageKey] = kdfChain(key.chainKey);
  const header = writer()
    .u8(WIRE_VERSION)
    .u8(WireType.SenderKeyMessage)
    .bytes(key.keyId)
    .u32(key.iteration)
    .finish();
  const nonce = randomBytes(NONCE_LENGTH);
  const ciphertext = seal(aeadKey(messageKey), nonce, plaintext, concatBytes(header, context));
  const body = concatBytes(header, nonce, ciphertext);
  const signature = sign(key.signing.secretKey, concatBytes(body, context));
  return {
    senderKey: { ...key, iteration: key.iteration + 1, chainKey },
    message: concatBytes(body, signature),
  };
}

export type ParsedSenderKeyMessage = {
  keyId: Uint8Array;
  iteration: number;
  header: Uint8Array;
  nonce: Uint8Array;
  ciphertext: Uint8Array;
  body: Uint8Array;
  signature: Uint8Array;
};

/** Parses a group message (for example to find its key id before loading the sender key). */
export function parseSenderKeyMessage(bytes: Uint8Array): ParsedSenderKeyMessage {
  const r = reader(bytes, 'sender key message');
  readVersionAndType(r, WireType.SenderKeyMessage, 'sender key message');
  const keyId = r.bytes(SENDER_KEY_ID_LENGTH);
  const iteration = r.u32();
  const nonce = r.bytes(NONCE_LENGTH);
  const rest = r.rest();
  if (rest.length < SIGNATURE_LENGTH)
    throw new CryptoError('MALFORMED', 'sender key message is truncated');
  const bodyLength = bytes.length - SIGNATURE_LENGTH;
  return {
    keyId,
    iteration,
    header: bytes.slice(0, HEADER_LENGTH),
    nonce,
    ciphertext: rest.slice(0, rest.length - SIGNATURE_LENGTH),
    body: bytes.slice(0, bodyLength),
    signature: bytes.slice(bodyLength),
  };
}

/** What stays of a key once retired: its id, signing key and where its chain had got. */
export function retireSenderKey(key: InboundSenderKey): InboundSenderKey {
  return { ...key, chainKey: new Uint8Array(0), skipped: [], retired: true };
}

export function groupDecrypt(
  key: InboundSenderKey,
  bytes: Uint8Array,
  context: Uint8Array = new Uint8Array(0),
  limits: SenderKeyLimits = DEFAULT_SENDER_KEY_LIMITS,
): { senderKey: InboundSenderKey; plaintext: Uint8Array } {
  const m = parseSenderKeyMessage(bytes);
  if (!equalBytes(m.keyId, key.keyId)) {
    throw new CryptoError('UNKNOWN_KEY', 'message is under another sender key');
  }
  // Checked before any key is derived: only the holder of the signing key can move our chain.
  if (!verify(key.signingKey, concatBytes(m.body, context), m.signature)) {
    throw new CryptoError('BAD_SIGNATURE', 'sender key message signature does not verify');
  }
  // Noted read (opened here, or its content resent): never opened again.
  if (senderKeyRead(key, m.iteration))
    throw new CryptoError('DUPLICATE_MESSAGE', 'message already read');
  if (key.retired && m.iteration >= key.iteration) {
    // Its sender still writes under it: ask for the chain as it is now (`TOO_MANY_SKIPPED`, as
    // for a copy too far behind).
    throw new CryptoError('TOO_MANY_SKIPPED', 'sender key retired: ask for it as it is now');
  }
  const ad = concatBytes(m.header, context);

  if (m.iteration < key.iteration) {
    const index = key.skipped.findIndex((s) => s.iteration === m.iteration);
    // Used, out of the window, from before the key came, or retired, and never noted read.
    if (index < 0) throw new CryptoError('MESSAGE_KEY_GONE', 'message key gone, not noted read');
    const plaintext = open(aeadKey(key.skipped[index]!.messageKey), m.nonce, m.ciphertext, ad);
    const skipped = key.skipped.filter((_, i) => i !== index);
    return { senderKey: { ...key, skipped }, plaintext };
  }

  if (m.iteration - key.iteration > limits.maxForward) {
    throw new CryptoError(
      'TOO_MANY_SKIPPED',
      `message is ${m.iteration - key.iteration} iterations ahead (limit ${limits.maxForward})`,
    );
  }
  const skipped = [...key.skipped];
  let chainKey = key.chainKey;
  for (let iteration = key.iteration; iteration < m.iteration; iteration++) {
    const [next, messageKey] = kdfChain(chainKey);
    // A place noted read ahead of the chain (its content came resent) keeps no key.
    if (!senderKeyRead(key, iteration)) skipped.push({ iteration, messageKey });
    chainKey = next;
  }
  const [nextChainKey, messageKey] = kdfChain(chainKey);
  const plaintext = open(aeadKey(messageKey), m.nonce, m.ciphertext, ad);
  if (skipped.length > limits.maxSkippedKeys)
    skipped.splice(0, skipped.length - limits.maxSkippedKeys);
  return {
    senderKey: { ...key, iteration: m.iteration + 1, chainKey: nextChainKey, skipped },
    plaintext,
  };
}
