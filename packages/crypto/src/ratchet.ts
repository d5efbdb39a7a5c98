/**
 * The Double Ratchet (https://signal.org/docs/specifications/doubleratchet/), without header
 * encryption. KDF_RK = HKDF-SHA256(salt = RK, IKM = DH output, info "MVP DR root v1") -> 64
 * bytes (RK, CK). KDF_CK: MK = HMAC(CK, 0x01), CK' = HMAC(CK, 0x02). The AEAD key is
 * HKDF(MK, info "MVP DR message v1"), the cipher XChaCha20-Poly1305 with a random 24-byte
 * nonce carried in the message, AD = X3DH AD || encoded header.
 *
 * Functions never mutate their input state: they return a new one, so a failed decryption
 * (tampering, replay, too many skipped keys) leaves the caller's state exactly as it was.
 */
import { asciiBytes, concatBytes, equalBytes, reader, writer } from './bytes.js';
import { CryptoError } from './errors.js';
import {
  KEY_LENGTH,
  type KeyPair,
  NONCE_LENGTH,
  dh,
  generateX25519KeyPair,
  hkdf,
  hmacSha256,
  open,
  seal,
} from './primitives.js';
import { randomBytes } from './random.js';
import { WIRE_VERSION, WireType } from './wire.js';

const ROOT_INFO = asciiBytes('MVP DR root v1');
const MESSAGE_INFO = asciiBytes('MVP DR message v1');
const CHAIN_MESSAGE = Uint8Array.of(0x01);
const CHAIN_NEXT = Uint8Array.of(0x02);
/** version, type, ratchet public key, previous chain length, message number. */
export const HEADER_LENGTH = 1 + 1 + KEY_LENGTH + 4 + 4;

export type RatchetLimits = {
  /** Most message keys one incoming message may make us skip (per chain): beyond, refused. */
  maxSkip: number;
  /** Most skipped message keys kept per session: beyond, the oldest are forgotten. */
  maxSkippedKeys: number;
};

export const DEFAULT_RATCHET_LIMITS: RatchetLimits = { maxSkip: 1000, maxSkippedKeys: 2000 };

export type SkippedKey = { ratchetKey: Uint8Array; counter: number; messageKey: Uint8Array };

export type RatchetState = {
  rootKey: Uint8Array;
  sendingKeyPair: KeyPair;
  remoteRatchetKey: Uint8Array | null;
  sendingChainKey: Uint8Array | null;
  receivingChainKey: Uint8Array | null;
  sendCount: number;
  receiveCount: number;
  previousSendCount: number;
  /** Oldest first, so eviction drops the longest-missing messages. */
  skipped: SkippedKey[];
};

export type RatchetHeader = { ratchetKey: Uint8Array; previousCount: number; counter: number };

function kdfRoot(rootKey: Uint8Array, dhOutput: Uint8Array): [Uint8Array, Uint8Array] {
  const out = hkdf(dhOutput, rootKey, ROOT_INFO, 64);
  return [out.slice(0, 32), out.slice(32)];
}

/** One symmetric-ratchet step: [next chain key, message key]. */
export function kdfChain(chainKey: Uint8Array): [Uint8Array, Uint8Array] {
  return [hmacSha256(chainKey, CHAIN_NEXT), hmacSha256(chainKey, CHAIN_MESSAGE)];
}

function aeadKey(messageKey: Uint8Array): Uint8Array {
  return hkdf(messageKey, undefined, MESSAGE_INFO, 32);
}

function copy(state: RatchetState): RatchetState {
  return { ...state, skipped: [...state.skipped] };
}

/** Alice, after X3DH: her first ratchet key meets Bob's signed prekey. */
export function initInitiator(sharedKey: Uint8Array, remoteRatchetKey: Uint8Array): RatchetState {
  const sendingKeyPair = generateX25519KeyPair();
  const [rootKey, sendingChainKey] = kdfRoot(
    sharedKey,
    dh(sendingKeyPair.secretKey, remoteRatchetKey),
  );
  return {
    rootKey,
    sendingKeyPair,
    remoteRatchetKey,
    sendingChainKey,
    receivingChainKey: null,
    sendCount: 0,
    receiveCount: 0,
    previousSendCount: 0,
    skipped: [],
  };
}

/** Bob, after X3DH: his signed prekey is his first ratchet key pair. */
export function initResponder(sharedKey: Uint8Array, ownRatchetKeyPair: KeyPair): RatchetState {
  return {
    rootKey: sharedKey,
    sendingKeyPair: ownRatchetKeyPair,
    remoteRatchetKey: null,
    sendingChainKey: null,
    receivingChainKey: null,
    sendCount: 0,
    receiveCount: 0,
    previousSendCount: 0,
    skipped: [],
  };
}

export function encodeHeader(header: RatchetHeader): Uint8Array {
  return writer()
    .u8(WIRE_VERSION)
    .u8(WireType.Message)
    .bytes(header.ratchetKey)
    .u32(header.previousCount)
    .u32(header.counter)
    .finish();
}

/** A ratchet message: header || nonce || ciphertext (with tag). */
export function parseRatchetMessage(message: Uint8Array): {
  header: RatchetHeader;
  headerBytes: Uint8Array;
  nonce: Uint8Array;
  ciphertext: Uint8Array;
} {
  const r = reader(message, 'ratchet message');
  const version = r.u8();
  if (version !== WIRE_VERSION)
    throw new CryptoError('UNKNOWN_VERSION', `message version ${version}`);
  if (r.u8() !== WireType.Message) throw new CryptoError('MALFORMED', 'not a ratchet message');
  const header = { ratchetKey: r.bytes(KEY_LENGTH), previousCount: r.u32(), counter: r.u32() };
  return {
    header,
    headerBytes: message.slice(0, HEADER_LENGTH),
    nonce: r.bytes(NONCE_LENGTH),
    ciphertext: r.rest(),
  };
}

export function ratchetEncrypt(
  state: RatchetState,
  plaintext: Uint8Array,
  associatedData: Uint8Array,
): { state: RatchetState; message: Uint8Array } {
  if (!state.sendingChainKey) {
    throw new CryptoError('UNKNOWN_KEY', 'this session has not received a message yet');
  }
  const next = copy(state);
  const [chainKey, messageKey] = kdfChain(state.sendingChainKey);
  next.sendingChainKey = chainKey;
  const headerBytes = encodeHeader({
    ratchetKey: state.sendingKeyPair.publicKey,
    previousCount: state.previousSendCount,
    counter: state.sendCount,
  });
  next.sendCount = state.sendCount + 1;
  const nonce = randomBytes(NONCE_LENGTH);
  const ciphertext = seal(
    aeadKey(messageKey),
    nonce,
    plaintext,
    concatBytes(associatedData, headerBytes),
  );
  return { state: next, message: concatBytes(headerBytes, nonce, ciphertext) };
}

function skipMessageKeys(state: RatchetState, until: number, limits: RatchetLimits): void {
  if (!state.receivingChainKey || !state.remoteRatchetKey) return;
  if (until - state.receiveCount > limits.maxSkip) {
    throw new CryptoError(
      'TOO_MANY_SKIPPED',
      `message would skip ${until - state.receiveCount} keys (limit ${limits.maxSkip})`,
    );
  }
  let chainKey = state.receivingChainKey;
  while (state.receiveCount < until) {
    const [nextChainKey, messageKey] = kdfChain(chainKey);
    state.skipped.push({
      ratchetKey: state.remoteRatchetKey,
      counter: state.receiveCount,
      messageKey,
    });
    chainKey = nextChainKey;
    state.receiveCount += 1;
  }
  state.receivingChainKey = chainKey;
  if (state.skipped.length > limits.maxSkippedKeys) {
    state.skipped.splice(0, state.skipped.length - limits.maxSkippedKeys);
  }
}

function dhRatchet(state: RatchetState, header: RatchetHeader): void {
  state.previousSendCount = state.sendCount;
  state.sendCount = 0;
  state.receiveCount = 0;
  state.remoteRatchetKey = header.ratchetKey;
  [state.rootKey, state.receivingChainKey] = kdfRoot(
    state.rootKey,
    dh(state.sendingKeyPair.secretKey, header.ratchetKey),
  );
  state.sendingKeyPair = generateX25519KeyPair();
  [state.rootKey, state.sendingChainKey] = kdfRoot(
    state.rootKey,
    dh(state.sendingKeyPair.secretKey, header.ratchetKey),
  );
}

export function ratchetDecrypt(
  state: RatchetState,
  message: Uint8Array,
  associatedData: Uint8Array,
  limits: RatchetLimits = DEFAULT_RATCHET_LIMITS,
): { state: RatchetState; plaintext: Uint8Array } {
  const { header, headerBytes, nonce, ciphertext } = parseRatchetMessage(message);
  const ad = concatBytes(associatedData, headerBytes);
  const next = copy(state);

  const skippedIndex = next.skipped.findIndex(
    (k) => k.counter === header.counter && equalBytes(k.ratchetKey, header.ratchetKey),
  );
  if (skippedIndex >= 0) {
    const plaintext = open(aeadKey(next.skipped[skippedIndex]!.messageKey), nonce, ciphertext, ad);
    // A message key is used once: deleting it is what rejects a replay of this message.
    next.skipped.splice(skippedIndex, 1);
    return { state: next, plaintext };
  }

  if (next.remoteRatchetKey && equalBytes(header.ratchetKey, next.remoteRatchetKey)) {
    if (header.counter < next.receiveCount) {
      throw new CryptoError('DUPLICATE_MESSAGE', 'this message key was already used');
    }
  } else {
    skipMessageKeys(next, header.previousCount, limits);
    dhRatchet(next, header);
  }
  skipMessageKeys(next, header.counter, limits);
  const [chainKey, messageKey] = kdfChain(next.receivingChainKey!);
  next.receivingChainKey = chainKey;
  next.receiveCount += 1;
  const plaintext = open(aeadKey(messageKey), nonce, ciphertext, ad);
  return { state: next, plaintext };
}
