/**
 * Versioned serialization of keys and state, for the app's own storage: a JSON string with
 * `v` (format version) and `kind`, byte fields in base64. Unknown versions are refused
 * (UNKNOWN_VERSION), never guessed at; a wrong kind or missing field is MALFORMED.
 * These strings hold secret keys: store them where the platform keeps secrets.
 */
import { fromBase64, toBase64 } from './bytes.js';
import { CryptoError } from './errors.js';
import type { DeviceKeys, OneTimePreKey, PublicDeviceKeys, SignedPreKey } from './keys.js';
import type { KeyPair } from './primitives.js';
import type { RatchetState } from './ratchet.js';
import type { InboundSenderKey, OutboundSenderKey } from './senderKeys.js';
import type { PendingPreKey, Session, SessionState } from './session.js';
import type { TrustRecord } from './store.js';

export const STATE_VERSION = 1;

type Kind =
  | 'deviceKeys'
  | 'signedPreKey'
  | 'oneTimePreKey'
  | 'session'
  | 'outboundSenderKey'
  | 'inboundSenderKey'
  | 'trust';

type Json = Record<string, unknown>;

const b64 = toBase64;

function bytes(value: unknown, what: string): Uint8Array {
  if (typeof value !== 'string') throw new CryptoError('MALFORMED', `${what} is missing`);
  return fromBase64(value);
}

function int(value: unknown, what: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) {
    throw new CryptoError('MALFORMED', `${what} is not a non-negative integer`);
  }
  return value;
}

function obj(value: unknown, what: string): Json {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new CryptoError('MALFORMED', `${what} is missing`);
  }
  return value as Json;
}

function arr(value: unknown, what: string): unknown[] {
  if (!Array.isArray(value)) throw new CryptoError('MALFORMED', `${what} is missing`);
  return value;
}

function wrap(kind: Kind, body: Json): string {
  return JSON.stringify({ v: STATE_VERSION, kind, ...body });
}

function unwrap(text: string, kind: Kind): Json {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new CryptoError('MALFORMED', `${kind} is not JSON`);
  }
  const value = obj(parsed, kind);
  if (value.v !== STATE_VERSION) {
    throw new CryptoError('UNKNOWN_VERSION', `${kind} format version ${String(value.v)}`);
  }
  if (value.kind !== kind) throw new CryptoError('MALFORMED', `expected ${kind}`);
  return value;
}

const keyPairToJson = (k: KeyPair) => ({
  publicKey: b64(k.publicKey),
  secretKey: b64(k.secretKey),
});
function keyPairFromJson(value: unknown, what: string): KeyPair {
  const o = obj(value, what);
  return { publicKey: bytes(o.publicKey, what), secretKey: bytes(o.secretKey, what) };
}

const publicKeysToJson = (k: PublicDeviceKeys) => ({
  identityKey: b64(k.identityKey),
  signingKey: b64(k.signingKey),
});
function publicKeysFromJson(value: unknown, what: string): PublicDeviceKeys {
  const o = obj(value, what);
  return { identityKey: bytes(o.identityKey, what), signingKey: bytes(o.signingKey, what) };
}

export function serializeDeviceKeys(keys: DeviceKeys): string {
  return wrap('deviceKeys', {
    identity: keyPairToJson(keys.identity),
    signing: keyPairToJson(keys.signing),
  });
}

export function deserializeDeviceKeys(text: string): DeviceKeys {
  const o = unwrap(text, 'deviceKeys');
  return {
    identity: keyPairFromJson(o.identity, 'identity'),
    signing: keyPairFromJson(o.signing, 'signing'),
  };
}

export function serializeSignedPreKey(key: SignedPreKey): string {
  return wrap('signedPreKey', {
    keyId: key.keyId,
    keyPair: keyPairToJson(key.keyPair),
    signature: b64(key.signature),
    createdAt: key.createdAt,
  });
}

export function deserializeSignedPreKey(text: string): SignedPreKey {
  const o = unwrap(text, 'signedPreKey');
  return {
    keyId: int(o.keyId, 'keyId'),
    keyPair: keyPairFromJson(o.keyPair, 'keyPair'),
    signature: bytes(o.signature, 'signature'),
    createdAt: int(o.createdAt, 'createdAt'),
  };
}

export function serializeOneTimePreKey(key: OneTimePreKey): string {
  return wrap('oneTimePreKey', { keyId: key.keyId, keyPair: keyPairToJson(key.keyPair) });
}

export function deserializeOneTimePreKey(text: string): OneTimePreKey {
  const o = unwrap(text, 'oneTimePreKey');
  return { keyId: int(o.keyId, 'keyId'), keyPair: keyPairFromJson(o.keyPair, 'keyPair') };
}

const optionalBytes = (value: Uint8Array | null) => (value ? b64(value) : null);
function optionalBytesFromJson(value: unknown, what: string): Uint8Array | null {
  return value === null ? null : bytes(value, what);
}

function ratchetToJson(r: RatchetState): Json {
  return {
    rootKey: b64(r.rootKey),
    sendingKeyPair: keyPairToJson(r.sendingKeyPair),
    remoteRatchetKey: optionalBytes(r.remoteRatchetKey),
    sendingChainKey: optionalBytes(r.sendingChainKey),
    receivingChainKey: optionalBytes(r.receivingChainKey),
    sendCount: r.sendCount,
    receiveCount: r.receiveCount,
    previousSendCount: r.previousSendCount,
    skipped: r.skipped.map((k) => [b64(k.ratchetKey), k.counter, b64(k.messageKey)]),
  };
}

function ratchetFromJson(value: unknown): RatchetState {
  const o = obj(value, 'ratchet');
  return {
    rootKey: bytes(o.rootKey, 'rootKey'),
    sendingKeyPair: keyPairFromJson(o.sendingKeyPair, 'sendingKeyPair'),
    remoteRatchetKey: optionalBytesFromJson(o.remoteRatchetKey, 'remoteRatchetKey'),
    sendingChainKey: optionalBytesFromJson(o.sendingChainKey, 'sendingChainKey'),
    receivingChainKey: optionalBytesFromJson(o.receivingChainKey, 'receivingChainKey'),
    sendCount: int(o.sendCount, 'sendCount'),
    receiveCount: int(o.receiveCount, 'receiveCount'),
    previousSendCount: int(o.previousSendCount, 'previousSendCount'),
    skipped: arr(o.skipped, 'skipped').map((entry) => {
      const [ratchetKey, counter, messageKey] = arr(entry, 'skipped key');
      return {
        ratchetKey: bytes(ratchetKey, 'ratchetKey'),
        counter: int(counter, 'counter'),
        messageKey: bytes(messageKey, 'messageKey'),
      };
    }),
  };
}

function pendingToJson(p: PendingPreKey | null): Json | null {
  if (!p) return null;
  return {
    local: publicKeysToJson(p.local),
    baseKey: b64(p.baseKey),
    signedPreKeyId: p.signedPreKeyId,
    oneTimePreKeyId: p.oneTimePreKeyId ?? null,
  };
}

function pendingFromJson(value: unknown): PendingPreKey | null {
  if (value === null) return null;
  const o = obj(value, 'pendingPreKey');
  return {
    local: publicKeysFromJson(o.local, 'local'),
    baseKey: bytes(o.baseKey, 'baseKey'),
    signedPreKeyId: int(o.signedPreKeyId, 'signedPreKeyId'),
    oneTimePreKeyId: o.oneTimePreKeyId === null ? undefined : int(o.oneTimePreKeyId, 'id'),
  };
}

function sessionStateToJson(state: SessionState): Json {
  return {
    remote: publicKeysToJson(state.remote),
    associatedData: b64(state.associatedData),
    baseKey: b64(state.baseKey),
    ratchet: ratchetToJson(state.ratchet),
    pendingPreKey: pendingToJson(state.pendingPreKey),
  };
}

function sessionStateFromJson(o: Json): SessionState {
  return {
    remote: publicKeysFromJson(o.remote, 'remote'),
    associatedData: bytes(o.associatedData, 'associatedData'),
    baseKey: bytes(o.baseKey, 'baseKey'),
    ratchet: ratchetFromJson(o.ratchet),
    pendingPreKey: pendingFromJson(o.pendingPreKey),
  };
}

export function serializeSession(session: Session): string {
  return wrap('session', {
    ...sessionStateToJson(session),
    archived: session.archived.map(sessionStateToJson),
  });
}

/** Sessions stored before archives existed have none: `archived` may be missing. */
export function deserializeSession(text: string): Session {
  const o = unwrap(text, 'session');
  const archived = o.archived === undefined ? [] : arr(o.archived, 'archived');
  return {
    ...sessionStateFromJson(o),
    archived: archived.map((state) => sessionStateFromJson(obj(state, 'archived session'))),
  };
}

export function serializeOutboundSenderKey(key: OutboundSenderKey): string {
  return wrap('outboundSenderKey', {
    keyId: b64(key.keyId),
    iteration: key.iteration,
    chainKey: b64(key.chainKey),
    signing: keyPairToJson(key.signing),
    createdAt: key.createdAt,
  });
}

export function deserializeOutboundSenderKey(text: string): OutboundSenderKey {
  const o = unwrap(text, 'outboundSenderKey');
  return {
    keyId: bytes(o.keyId, 'keyId'),
    iteration: int(o.iteration, 'iteration'),
    chainKey: bytes(o.chainKey, 'chainKey'),
    signing: keyPairFromJson(o.signing, 'signing'),
    createdAt: int(o.createdAt, 'createdAt'),
  };
}

export function serializeInboundSenderKey(key: InboundSenderKey): string {
  return wrap('inboundSenderKey', {
    keyId: b64(key.keyId),
    iteration: key.iteration,
    chainKey: b64(key.chainKey),
    signingKey: b64(key.signingKey),
    skipped: key.skipped.map((s) => [s.iteration, b64(s.messageKey)]),
    receivedAt: key.receivedAt,
    read: key.read ?? [],
    ...(key.retired ? { retired: true } : {}),
  });
}

export function deserializeInboundSenderKey(text: string): InboundSenderKey {
  const o = unwrap(text, 'inboundSenderKey');
  return {
    keyId: bytes(o.keyId, 'keyId'),
    iteration: int(o.iteration, 'iteration'),
    chainKey: bytes(o.chainKey, 'chainKey'),
    signingKey: bytes(o.signingKey, 'signingKey'),
    skipped: arr(o.skipped, 'skipped').map((entry) => {
      const [iteration, messageKey] = arr(entry, 'skipped key');
      return { iteration: int(iteration, 'iteration'), messageKey: bytes(messageKey, 'key') };
    }),
    // Absent in records written before keys were retired: the oldest then.
    receivedAt: o.receivedAt === undefined ? 0 : int(o.receivedAt, 'receivedAt'),
    // Absent in records written before reads were kept: nothing known read.
    read: (o.read === undefined ? [] : arr(o.read, 'read')).map((entry) => {
      const [from, to] = arr(entry, 'read range');
      const range: [number, number] = [int(from, 'read from'), int(to, 'read to')];
      if (range[0] >= range[1]) throw new CryptoError('MALFORMED', 'read range is empty');
      return range;
    }),
    ...(o.retired === true ? { retired: true as const } : {}),
  };
}

export function serializeTrust(record: TrustRecord): string {
  return wrap('trust', {
    verified: record.verified,
    devices: record.devices.map((d) => ({ deviceId: d.deviceId, keys: publicKeysToJson(d.keys) })),
  });
}

export function deserializeTrust(text: string): TrustRecord {
  const o = unwrap(text, 'trust');
  if (typeof o.verified !== 'boolean') throw new CryptoError('MALFORMED', 'verified is missing');
  return {
    verified: o.verified,
    devices: arr(o.devices, 'devices').map((value) => {
      const d = obj(value, 'device');
      if (typeof d.deviceId !== 'string') throw new CryptoError('MALFORMED', 'deviceId is missing');
      return { deviceId: d.deviceId, keys: publicKeysFromJson(d.keys, 'keys') };
    }),
  };
}
