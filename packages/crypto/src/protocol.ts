/**
 * The store-driven layer the SDK calls: load state, run the pure function, save the new state
 * only when it succeeded. Callers must not run two of these for the same address (or the same
 * conversation) at once; the SDK queues them per address.
 */
import { equalBytes, toBase64 } from './bytes.js';
import { CryptoError } from './errors.js';
import {
  type DeviceKeys,
  type OneTimePreKey,
  type PreKeyBundle,
  type PublicDeviceKeys,
  type SignedPreKey,
  generateOneTimePreKeys,
  generateSignedPreKey,
} from './keys.js';
import {
  type InboundSenderKey,
  createSenderKey,
  groupDecrypt,
  groupEncrypt,
  parseSenderKeyMessage,
  processSenderKeyDistribution,
  retireSenderKey,
  senderKeyRead,
  withRead,
  senderKeyDistribution,
} from './senderKeys.js';
import {
  createInboundSession,
  createOutboundSession,
  decrypt,
  encrypt,
  messageType,
  parsePreKeyMessage,
  type Session,
} from './session.js';
import type { CryptoStore } from './store.js';
import { WireType } from './wire.js';

async function deviceKeys(store: CryptoStore): Promise<DeviceKeys> {
  const keys = await store.getDeviceKeys();
  if (!keys) throw new CryptoError('UNKNOWN_KEY', 'this device has no keys yet');
  return keys;
}

/** Stores a new signed prekey and `count` one-time prekeys; returns them for upload. */
export async function generatePreKeys(
  store: CryptoStore,
  options: { signedPreKeyId?: number; firstOneTimePreKeyId: number; count: number },
): Promise<{ signedPreKey: SignedPreKey | undefined; oneTimePreKeys: OneTimePreKey[] }> {
  const keys = await deviceKeys(store);
  let signedPreKey: SignedPreKey | undefined;
  if (options.signedPreKeyId !== undefined) {
    signedPreKey = generateSignedPreKey(keys, options.signedPreKeyId);
    await store.putSignedPreKey(signedPreKey);
  }
  const oneTimePreKeys = generateOneTimePreKeys(options.firstOneTimePreKeyId, options.count);
  for (const key of oneTimePreKeys) await store.putOneTimePreKey(key);
  return { signedPreKey, oneTimePreKeys };
}

/** How many replaced sessions per device are kept (Signal keeps 40; two-way races need 1). */
const MAX_ARCHIVED = 10;

/** `next` as the current session, `replaced` (with its own archive) archived behind it. */
function replacing(next: Session, replaced: Session | undefined): Session {
  if (!replaced) return next;
  const { archived, ...state } = replaced;
  return { ...next, archived: [state, ...archived, ...next.archived].slice(0, MAX_ARCHIVED) };
}

/** Starts (or restarts) the session with a device from its claimed bundle. */
export async function startSession(
  store: CryptoStore,
  address: string,
  bundle: PreKeyBundle,
): Promise<void> {
  const fresh = createOutboundSession(await deviceKeys(store), bundle);
  await store.putSession(address, replacing(fresh, await store.getSession(address)));
}

export async function encryptToDevice(
  store: CryptoStore,
  address: string,
  plaintext: Uint8Array,
): Promise<Uint8Array> {
  const session = await store.getSession(address);
  if (!session) throw new CryptoError('UNKNOWN_KEY', `no session with ${address}`);
  const result = encrypt(session, plaintext);
  await store.putSession(address, result.session);
  return result.message;
}

/**
 * Asked, before anything is stored, with the keys of the device whose session opened a message:
 * throws to refuse it. The keys in a prekey message are whatever its sender put there (X3DH
 * proves only that it holds them), so only the caller, who knows which keys that device has, can
 * tell a contact's new session from someone else's under the contact's name.
 */
export type CheckRemote = (remote: PublicDeviceKeys) => Promise<void>;

/**
 * Decrypts a pairwise message. A prekey message from a new X3DH run builds a new session
 * (the old one is archived) and consumes its one-time prekey, so a replay of it finds no key.
 * A message the current session cannot open is tried on the archived ones: one that opens it
 * becomes current again, since the other device is using it (both devices started a session
 * at once, and each took the other's as current). `checkRemote` sees the keys of whichever
 * session opened it (new, current or archived); when it throws, nothing is stored or consumed.
 */
export async function decryptFromDevice(
  store: CryptoStore,
  address: string,
  bytes: Uint8Array,
  options: { checkRemote?: CheckRemote } = {},
): Promise<Uint8Array> {
  const checkRemote = options.checkRemote ?? (async () => undefined);
  const existing = await store.getSession(address);
  if (messageType(bytes) === WireType.PreKeyMessage) {
    const preKey = parsePreKeyMessage(bytes);
    const runs = existing ? [existing, ...existing.archived] : [];
    if (!runs.some((run) => equalBytes(run.baseKey, preKey.baseKey))) {
      const keys = await deviceKeys(store);
      const signedPreKey = await store.getSignedPreKey(preKey.signedPreKeyId);
      if (!signedPreKey) throw new CryptoError('UNKNOWN_KEY', 'unknown signed prekey');
      let oneTimePreKey: OneTimePreKey | undefined;
      if (preKey.oneTimePreKeyId !== undefined) {
        oneTimePreKey = await store.getOneTimePreKey(preKey.oneTimePreKeyId);
        if (!oneTimePreKey) throw new CryptoError('UNKNOWN_KEY', 'one-time prekey already used');
      }
      const result = createInboundSession(
        keys,
        { signedPreKey: signedPreKey.keyPair, oneTimePreKey: oneTimePreKey?.keyPair },
        bytes,
      );
      await checkRemote(result.session.remote);
      if (oneTimePreKey) await store.deleteOneTimePreKey(oneTimePreKey.keyId);
      await store.putSession(address, replacing(result.session, existing));
      return result.plaintext;
    }
  }
  if (!existing) throw new CryptoError('UNKNOWN_KEY', `no session with ${address}`);
  let opened: { session: Session; plaintext: Uint8Array } | undefined;
  let failure: unknown;
  try {
    opened = decrypt(existing, bytes);
  } catch (error) {
    failure = error;
  }
  if (opened) {
    await checkRemote(opened.session.remote);
    await store.putSession(address, opened.session);
    return opened.plaintext;
  }
  for (const [i, state] of existing.archived.entries()) {
    let result: { session: Session; plaintext: Uint8Array };
    try {
      result = decrypt({ ...state, archived: [] }, bytes);
    } catch {
      continue;
    }
    await checkRemote(result.session.remote);
    const others = existing.archived.filter((_, j) => j !== i);
    await store.putSession(address, replacing(result.session, { ...existing, archived: others }));
    return result.plaintext;
  }
  throw failure;
}

/**
 * Our sender key for a conversation, created when missing. `distribution` is what every member
 * device must receive through `encryptToDevice` before it can read our group messages.
 */
export async function outboundSenderKey(
  store: CryptoStore,
  conversationId: string,
): Promise<{ created: boolean; distribution: Uint8Array }> {
  let key = await store.getOutboundSenderKey(conversationId);
  const created = !key;
  if (!key) {
    key = createSenderKey();
    await store.putOutboundSenderKey(conversationId, key);
  }
  return { created, distribution: senderKeyDistribution(key) };
}

/** After a member leaves or is removed: a fresh key; send its distribution to those who stay. */
export async function rotateOutboundSenderKey(
  store: CryptoStore,
  conversationId: string,
): Promise<Uint8Array> {
  const key = createSenderKey();
  await store.putOutboundSenderKey(conversationId, key);
  return senderKeyDistribution(key);
}

export async function encryptGroup(
  store: CryptoStore,
  conversationId: string,
  plaintext: Uint8Array,
  context?: Uint8Array,
): Promise<Uint8Array> {
  const key = await store.getOutboundSenderKey(conversationId);
  if (!key) throw new CryptoError('UNKNOWN_KEY', 'no sender key for this conversation');
  const result = groupEncrypt(key, plaintext, context);
  await store.putOutboundSenderKey(conversationId, result.senderKey);
  return result.message;
}

/**
 * Stores a sender key received (decrypted) from `sender` through a pairwise session. With
 * `forward`, a distribution further on than our copy of the same chain moves our copy there
 * (keeping the keys it holds for messages not yet read): what a receiver asks for when a
 * message is more than `maxForward` iterations ahead of its copy. Messages in between are lost
 * to it; everything from the distribution on reads again.
 */
export async function receiveSenderKey(
  store: CryptoStore,
  conversationId: string,
  sender: string,
  distribution: Uint8Array,
  options: { forward?: boolean } = {},
): Promise<InboundSenderKey> {
  const key = processSenderKeyDistribution(distribution);
  const keyId = toBase64(key.keyId);
  // A key id names one chain: a re-sent distribution must never rewind what we already hold
  // (that would re-open message keys we have used), and our copy derives anything later. Only
  // when asked does it jump ahead: a re-share after a lost session must not skip messages
  // still on their way.
  const existing = await store.getInboundSenderKey(conversationId, sender, keyId);
  if (!existing) return storeNewSenderKey(store, conversationId, sender, keyId, key);
  // A retired key comes back the same way, asked for because its sender still writes under it
  // (the server delivered shares out of order), and only from where its chain had got or later:
  // from before, it would read again what was read.
  const ahead = existing.retired
    ? key.iteration >= existing.iteration
    : key.iteration > existing.iteration;
  if (!options.forward || !ahead || !equalBytes(key.signingKey, existing.signingKey))
    return existing;
  // Back as the newest, within the same bound as a new key (a member cannot revive them all),
  // knowing what it read.
  if (existing.retired)
    return storeNewSenderKey(store, conversationId, sender, keyId, { ...key, read: existing.read });
  const moved = {
    ...key,
    skipped: existing.skipped,
    receivedAt: existing.receivedAt,
    read: existing.read,
  };
  await store.putInboundSenderKey(conversationId, sender, keyId, moved);
  return moved;
}

/**
 * Keys of one sender per conversation kept whole when the store can list them (Signal keeps
 * five states per sender). A member rotates at every departure, so without a bound every key
 * each member ever had would stay, with up to `maxSkippedKeys` message keys each.
 */
export const MAX_INBOUND_SENDER_KEYS = 5;
/**
 * Retired keys remembered per sender: the same key received again (a copy of its distribution
 * the server held back) is refused rather than started over, which would let the server replay
 * messages already read as new. Past this many rotations the oldest record goes (about 150
 * bytes each).
 */
export const MAX_RETIRED_SENDER_KEYS = 200;

async function storeNewSenderKey(
  store: CryptoStore,
  conversationId: string,
  sender: string,
  keyId: string,
  received: InboundSenderKey,
): Promise<InboundSenderKey> {
  const held: [string, InboundSenderKey][] = [];
  for (const id of (await store.inboundSenderKeyIds?.(conversationId, sender)) ?? []) {
    if (id === keyId) continue; // a retired key coming back: replaced below
    try {
      const other = await store.getInboundSenderKey(conversationId, sender, id);
      if (other) held.push([id, other]);
    } catch {
      // A record that does not read is no key to keep whole, and must not stop new ones.
    }
  }
  // Later than every key held, also within one millisecond, so "newest" is the order received.
  const now = Date.now();
  const newest = Math.max(0, ...held.map(([, other]) => other.receivedAt));
  const key = { ...received, receivedAt: Math.max(now, newest + 1) };
  await store.putInboundSenderKey(conversationId, sender, keyId, key);

  // Newest first: the first few stay whole, the next are retired, the oldest records go.
  held.sort(([, a], [, b]) => b.receivedAt - a.receivedAt);
  let whole = 1; // the key just stored
  let retired = 0;
  for (const [id, other] of held) {
    if (other.receivedAt === 0) {
      // Kept from before keys had a time: their order is not known, so none is retired now.
      // Dated from here, they are older than the new key, and ranked at the next one.
      await store.putInboundSenderKey(conversationId, sender, id, {
        ...other,
        receivedAt: now - 1,
      });
      continue;
    }
    if (!other.retired && whole < MAX_INBOUND_SENDER_KEYS) whole++;
    else if (retired < MAX_RETIRED_SENDER_KEYS) {
      retired++;
      if (!other.retired)
        await store.putInboundSenderKey(conversationId, sender, id, retireSenderKey(other));
    } else await store.deleteInboundSenderKey(conversationId, sender, id);
  }
  return key;
}

/**
 * Retires every key held from `sender` for a conversation this device left: the chains and the
 * keys of messages not read are forgotten (nothing more is for it to read, and a device taken
 * later cannot open them), the records stay, so that a held-back copy of a share is not taken as
 * new, and what was read stays read. Needs the store's `inboundSenderKeyIds`; the number retired.
 */
export async function retireSenderKeysOf(
  store: CryptoStore,
  conversationId: string,
  sender: string,
): Promise<number> {
  let retired = 0;
  for (const id of (await store.inboundSenderKeyIds?.(conversationId, sender)) ?? []) {
    let key: InboundSenderKey | undefined;
    try {
      key = await store.getInboundSenderKey(conversationId, sender, id);
    } catch {
      continue; // unreadable here: left as it is, as storeNewSenderKey leaves it
    }
    if (!key || key.retired) continue;
    await store.putInboundSenderKey(conversationId, sender, id, retireSenderKey(key));
    retired++;
  }
  return retired;
}

export async function decryptGroup(
  store: CryptoStore,
  conversationId: string,
  sender: string,
  bytes: Uint8Array,
  context?: Uint8Array,
): Promise<Uint8Array> {
  const keyId = toBase64(parseSenderKeyMessage(bytes).keyId);
  const key = await store.getInboundSenderKey(conversationId, sender, keyId);
  if (!key) throw new CryptoError('UNKNOWN_KEY', 'no sender key for this message: ask for it');
  const result = groupDecrypt(key, bytes, context);
  await store.putInboundSenderKey(conversationId, sender, keyId, result.senderKey);
  return result.plaintext;
}

/**
 * Whether the message at `iteration` under `sender`'s key `keyId` (base64) was read here: a copy
 * of it (a replay, or bytes changed so that they fail) is nothing to ask its sender for.
 */
export async function wasGroupMessageRead(
  store: CryptoStore,
  conversationId: string,
  sender: string,
  keyId: string,
  iteration: number,
): Promise<boolean> {
  const key = await store.getInboundSenderKey(conversationId, sender, keyId);
  return key !== undefined && senderKeyRead(key, iteration);
}

/**
 * Notes a message read under the key that sealed it, once its content is safe with the app
 * (decrypted and handed over, or resent pairwise): from then on a copy of it fails as
 * `DUPLICATE_MESSAGE`, even one whose key is still held (that key is dropped). Not done by
 * `decryptGroup` itself: an app stopped between the two can still ask its sender for it. False
 * when that key is not held (its read is then not kept).
 */
export async function noteGroupMessageRead(
  store: CryptoStore,
  conversationId: string,
  sender: string,
  keyId: string,
  iteration: number,
): Promise<boolean> {
  const key = await store.getInboundSenderKey(conversationId, sender, keyId);
  if (!key) return false;
  await store.putInboundSenderKey(conversationId, sender, keyId, withRead(key, iteration));
  return true;
}
