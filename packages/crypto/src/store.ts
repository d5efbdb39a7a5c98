/**
 * Where a device keeps its secrets. The SDK talks only to this interface; `createMemoryStore`
 * is the default (keys vanish with the process), and an app persists by implementing the same
 * methods over its own storage with the `serialize*` functions. Addresses and sender names are
 * opaque strings chosen by the caller (the SDK uses `userId:deviceId`).
 */
import type { DeviceKeys, OneTimePreKey, PublicDeviceKeys, SignedPreKey } from './keys.js';
import type { InboundSenderKey, OutboundSenderKey } from './senderKeys.js';
import {
  deserializeDeviceKeys,
  deserializeInboundSenderKey,
  deserializeOneTimePreKey,
  deserializeOutboundSenderKey,
  deserializeSession,
  deserializeSignedPreKey,
  deserializeTrust,
  serializeDeviceKeys,
  serializeInboundSenderKey,
  serializeOneTimePreKey,
  serializeOutboundSenderKey,
  serializeSession,
  serializeSignedPreKey,
  serializeTrust,
} from './serialize.js';
import type { Session } from './session.js';

/**
 * What this device trusts of another user's devices (trust on first use): each device's public
 * keys as first accepted, and whether I verified them (compared safety numbers). The SDK compares
 * every device list the server gives with it, so a server cannot swap or add keys unseen.
 */
export type TrustRecord = {
  verified: boolean;
  devices: { deviceId: string; keys: PublicDeviceKeys }[];
};

export type CryptoStore = {
  getDeviceKeys(): Promise<DeviceKeys | undefined>;
  putDeviceKeys(keys: DeviceKeys): Promise<void>;
  deleteDeviceKeys(): Promise<void>;

  getSignedPreKey(keyId: number): Promise<SignedPreKey | undefined>;
  putSignedPreKey(key: SignedPreKey): Promise<void>;
  deleteSignedPreKey(keyId: number): Promise<void>;
  /** Every signed prekey id held: rotation deletes the old ones once nobody can still use them. */
  signedPreKeyIds(): Promise<number[]>;

  getOneTimePreKey(keyId: number): Promise<OneTimePreKey | undefined>;
  putOneTimePreKey(key: OneTimePreKey): Promise<void>;
  deleteOneTimePreKey(keyId: number): Promise<void>;

  getSession(address: string): Promise<Session | undefined>;
  putSession(address: string, session: Session): Promise<void>;
  deleteSession(address: string): Promise<void>;

  /** Our own sender key for a conversation. */
  getOutboundSenderKey(conversationId: string): Promise<OutboundSenderKey | undefined>;
  putOutboundSenderKey(conversationId: string, key: OutboundSenderKey): Promise<void>;
  deleteOutboundSenderKey(conversationId: string): Promise<void>;

  /** Another device's sender key, by conversation, sender address and key id (base64). */
  getInboundSenderKey(
    conversationId: string,
    sender: string,
    keyId: string,
  ): Promise<InboundSenderKey | undefined>;
  putInboundSenderKey(
    conversationId: string,
    sender: string,
    keyId: string,
    key: InboundSenderKey,
  ): Promise<void>;
  deleteInboundSenderKey(conversationId: string, sender: string, keyId: string): Promise<void>;
  /**
   * Optional: the ids of one sender's keys held for a conversation, in any order. With it,
   * receiving a key retires the sender's older ones past the newest `MAX_INBOUND_SENDER_KEYS`
   * and deletes retired ones past `MAX_RETIRED_SENDER_KEYS`; without it, every key a member
   * ever shared stays whole for as long as the store.
   */
  inboundSenderKeyIds?(conversationId: string, sender: string): Promise<string[]>;
  /**
   * Optional: the senders whose keys are held for a conversation, in any order. With it (and
   * `inboundSenderKeyIds`), leaving a conversation retires every key of it
   * (`retireSenderKeysOf`); without it, they stay whole.
   */
  inboundSenderKeySenders?(conversationId: string): Promise<string[]>;

  /** The keys I trust for a user's devices, by user id. */
  getTrust(userId: string): Promise<TrustRecord | undefined>;
  putTrust(userId: string, record: TrustRecord): Promise<void>;
};

/**
 * Keeps serialized strings rather than objects: callers can never alias the stored state, and
 * every test through this store also exercises the serialization an app would persist.
 */
export function createMemoryStore(): CryptoStore {
  const data = new Map<string, string>();
  const load = <T>(key: string, parse: (text: string) => T): T | undefined => {
    const text = data.get(key);
    return text === undefined ? undefined : parse(text);
  };
  const save = (key: string, text: string) => void data.set(key, text);
  const remove = (key: string) => void data.delete(key);
  // JSON arrays as keys: no separator a caller's string could collide with.
  const k = (...parts: (string | number)[]) => JSON.stringify(parts);
  /** Inbound sender key ids by conversation, then sender: listing them reads no other record. */
  const senderKeyIds = new Map<string, Map<string, Set<string>>>();

  return {
    getDeviceKeys: async () => load(k('device'), deserializeDeviceKeys),
    putDeviceKeys: async (keys) => save(k('device'), serializeDeviceKeys(keys)),
    deleteDeviceKeys: async () => remove(k('device')),

    getSignedPreKey: async (id) => load(k('spk', id), deserializeSignedPreKey),
    putSignedPreKey: async (key) => save(k('spk', key.keyId), serializeSignedPreKey(key)),
    deleteSignedPreKey: async (id) => remove(k('spk', id)),
    signedPreKeyIds: async () =>
      [...data.keys()]
        .map((key) => JSON.parse(key) as (string | number)[])
        .filter((parts) => parts[0] === 'spk')
        .map((parts) => parts[1] as number),

    getOneTimePreKey: async (id) => load(k('otk', id), deserializeOneTimePreKey),
    putOneTimePreKey: async (key) => save(k('otk', key.keyId), serializeOneTimePreKey(key)),
    deleteOneTimePreKey: async (id) => remove(k('otk', id)),

    getSession: async (address) => load(k('session', address), deserializeSession),
    putSession: async (address, session) => save(k('session', address), serializeSession(session)),
    deleteSession: async (address) => remove(k('session', address)),

    getOutboundSenderKey: async (c) => load(k('osk', c), deserializeOutboundSenderKey),
    putOutboundSenderKey: async (c, key) => save(k('osk', c), serializeOutboundSenderKey(key)),
    deleteOutboundSenderKey: async (c) => remove(k('osk', c)),

    getInboundSenderKey: async (c, s, id) => load(k('isk', c, s, id), deserializeInboundSenderKey),
    putInboundSenderKey: async (c, s, id, key) => {
      save(k('isk', c, s, id), serializeInboundSenderKey(key));
      const senders = senderKeyIds.get(c) ?? new Map<string, Set<string>>();
      senderKeyIds.set(c, senders.set(s, (senders.get(s) ?? new Set()).add(id)));
    },
    deleteInboundSenderKey: async (c, s, id) => {
      remove(k('isk', c, s, id));
      const senders = senderKeyIds.get(c);
      const ids = senders?.get(s);
      ids?.delete(id);
      if (ids?.size === 0) senders!.delete(s);
      if (senders?.size === 0) senderKeyIds.delete(c);
    },
    inboundSenderKeyIds: async (c, s) => [...(senderKeyIds.get(c)?.get(s) ?? [])],
    inboundSenderKeySenders: async (c) => [...(senderKeyIds.get(c)?.keys() ?? [])],

    getTrust: async (userId) => load(k('trust', userId), deserializeTrust),
    putTrust: async (userId, record) => save(k('trust', userId), serializeTrust(record)),
  };
}
