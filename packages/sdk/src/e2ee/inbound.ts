/**
 * Reading: conversation messages under senders' keys, and the pairwise envelopes that carry
 * those keys (and requests for them). A message whose key is missing waits here, is reported
 * as undecryptable, and triggers a key request to its sender's device; the key's arrival
 * decrypts it late. One that cannot be read under the key (or whose key is gone) is asked for
 * again, as content sent pairwise (Signal's retry receipt), and delivered late when it comes.
 */
import {
  type CryptoStore,
  type PublicDeviceKeys,
  WireType,
  equalBytes,
  decryptFromDevice,
  decryptGroup,
  encryptToDevice,
  isCryptoError,
  messageType,
  noteGroupMessageRead,
  parsePreKeyMessage,
  parseSenderKeyMessage,
  receiveSenderKey,
  retireSenderKeysOf,
  toBase64,
  wasGroupMessageRead,
} from '@mvp/crypto';
import { bytesToBase64 } from '../base64';
import type { Envelope, Message } from '../messaging';
import type { Awaitable } from '../types';
import type { Directory } from './directory';
import {
  E2EE_CONTENT_TYPE,
  E2EE_DEVICE_CONTENT_TYPE,
  addressOf,
  decodeContent,
  decodeDevicePayload,
  decodeEdit,
  editContext,
  encodeDevicePayload,
  groupContext,
  MAX_RESEND_ITERATIONS,
  type DevicePayload,
} from './payloads';
import { createSenderIdentity, SenderCheckUnavailable } from './senderIdentity';
import { lanes, type KeyedQueue } from './serial';
import type { DeviceRef, E2eeTransport, Me } from './transport';

export type DecryptedMessage = {
  /** The stored message as the server has it (its `ciphertext` stays the encrypted bytes). */
  message: Message;
  contentType: string;
  body: Uint8Array;
  /** True when it could not be read at first and is delivered after its key arrived. */
  late: boolean;
  /**
   * True when this is an edited version (`message.editedAt` is set): show it in place of the
   * message with the same `message.id` (or add it, if you have not seen that one).
   */
  edited: boolean;
};

export type UndecryptableReason =
  /**
   * This device has not (yet) received the sender key, or its copy is too far behind the
   * message to derive its key (more than 2000 messages missed): a key request is on its way.
   * Behind, the request brings the sender's chain as it is now: what it writes after answering
   * reads; what it wrote before (this one, and others already waiting) is reported again as
   * `decrypt_failed`. A key its sender replaced since is asked for as content instead (below).
   */
  | 'missing_key'
  /**
   * The key is here but the bytes did not verify or decrypt (tampered, replayed, corrupt, or
   * too far behind): the sending device is asked to send the content again, pairwise, which
   * it does if it still has it (sent from that device, in that run of the app, within a day).
   * Not asked: a copy of a message this device has read (a replay).
   */
  | 'decrypt_failed';

export type UndecryptableMessage = { message: Message; reason: UndecryptableReason };

/** The key a message needs and the device (of the sender's) that holds it. */
type Missing = { keyId: string; device: string; behind?: true };

/** A message's place in its sealing device's chain: what a resend names. */
type Place = { sender: DeviceRef; keyId: string; iteration: number };

type Outcome =
  | { ok: true; contentType: string; body: Uint8Array }
  | {
      ok: false;
      reason: UndecryptableReason;
      /** For `missing_key`: the key and the device (of the sender's) that holds it. */
      missing?: Missing;
    };

const RECENT_LIMIT = 500;
/** Places read from resent content under keys this device does not hold (about 100 KB). */
const MAX_READ_PLACES = 5000;
/**
 * Messages kept waiting for their sender key, in all. The app is told `missing_key` at once;
 * the wait only allows a late delivery. Past this the oldest wait is given up, so a member
 * posting under made-up key ids cannot grow memory for as long as the app runs.
 */
export const MAX_WAITING = 1000;
/** Messages the server showed at one place in a sender's chain, kept asking for its content. */
const MAX_SHOWN_PER_PLACE = 4;
/** Resends kept for a message not here yet (each at most 24 KiB of content). */
const MAX_UNCLAIMED = 100;

export type Inbound = {
  /**
   * For `message.new` and edits (`message.updated`): decrypts, then hands the result to the app
   * (or reports it unreadable).
   */
  handleMessage(message: Message): Promise<void>;
  /**
   * Decrypts one pairwise message from a device (for `client.e2ee.pairwise`); throws when it
   * cannot. The same checks and session repair as for envelopes.
   */
  openFrom(sender: DeviceRef, ciphertext: Uint8Array): Promise<Uint8Array>;
  /** For `envelope`: handles ours (sender keys, key requests); others are left to the app. */
  handleEnvelope(envelope: Envelope): Promise<void>;
  /** Tries again now; when the key is still missing, asks the sender's device once more. */
  retry(message: Message): Promise<boolean>;
  /** Decrypts without delivering (history pages); the result is remembered by message id. */
  decrypt(message: Message): Promise<Outcome>;
  /**
   * Left the conversation: what waits for its keys will never be readable, and the keys held
   * for it are retired (chains and unread message keys forgotten) where the store can list them.
   */
  forgetConversation(conversationId: string): Promise<void>;
  /** Deleted for everyone or expired: nothing waiting for them is delivered any more. */
  forgetMessages(conversationId: string, seqs: readonly number[]): void;
};

export function isE2eeMessage(message: Message): boolean {
  return message.contentType === E2EE_CONTENT_TYPE && message.ciphertext !== null;
}

/**
 * Which device's sender key encrypted the message's current bytes, and under which associated
 * data: the sending device for an original, the editing device (named in the bytes, always one
 * of the sender's: the address is built from `senderId`) for an edit.
 */
function sealedBy(message: Message & { ciphertext: Uint8Array }) {
  if (message.editedAt === null)
    return {
      device: message.senderDeviceId,
      bytes: message.ciphertext,
      context: (sender: string) => groupContext(message.conversationId, sender),
    };
  const edit = decodeEdit(message.ciphertext);
  return {
    device: edit.deviceId,
    bytes: edit.ciphertext,
    context: (sender: string) => editContext(message.conversationId, sender, message.seq),
  };
}

/** Where a message's bytes sit in its sealing device's chain; undefined when they do not parse. */
function placeOf(message: Message): Place | undefined {
  if (message.ciphertext === null) return undefined;
  try {
    const sealed = sealedBy({ ...message, ciphertext: message.ciphertext });
    const { keyId, iteration } = parseSenderKeyMessage(sealed.bytes);
    return {
      sender: { userId: message.senderId, deviceId: sealed.device },
      keyId: toBase64(keyId),
      iteration,
    };
  } catch {
    return undefined;
  }
}

/** A prekey message: one that may start a new session, with the keys it carries. */
function isPreKeyMessage(ciphertext: Uint8Array): boolean {
  try {
    return messageType(ciphertext) === WireType.PreKeyMessage;
  } catch {
    return false; // not one that parses: decrypting it says why
  }
}

/** A message's bytes change with each edit: remembered plaintexts are per version. */
const versionOf = (message: Message) => `${message.id}\n${message.editedAt ?? ''}`;

export function createInbound(deps: {
  store: CryptoStore;
  transport: E2eeTransport;
  directory: Directory;
  queue: KeyedQueue;
  me: () => Promise<Me>;
  /** The server's time as this device reads it: a disappearing message is late by it. */
  now?: () => number;
  deliver(decrypted: DecryptedMessage): Awaitable<void>;
  undecryptable(event: UndecryptableMessage): Awaitable<void>;
  /** A key request reached us from `from`: answer it if they may have the key. */
  keyRequested(conversationId: string, from: DeviceRef, keyId: string, behind: boolean): void;
  /** `from` asks for the content of messages of ours: send what they may have. */
  resendRequested(
    conversationId: string,
    from: DeviceRef,
    keyId: string,
    iterations: number[],
  ): void;
  /** A pairwise session had to be dropped (the next send starts a new one). */
  sessionReset(address: string): void;
  report(error: unknown): void;
}): Inbound {
  const { store, transport, directory, queue } = deps;
  const senderIdentity = createSenderIdentity({ store, directory });
  const now = deps.now ?? Date.now;
  /** Messages waiting for a sender key, by `conversation \n sender \n keyId`, in arrival order. */
  const pending = new Map<string, Message[]>();
  /**
   * Plaintexts by message version: a redelivered event (the app's handler threw) reads the same.
   * Each with the message it was read from: only the same bytes in the same conversation from
   * the same sender get it, not another message the server gave the same id.
   */
  const recent = new Map<string, { outcome: Outcome & { ok: true }; from: Message }>();
  const sameMessage = (a: Message, b: Message) =>
    a.conversationId === b.conversationId &&
    a.senderId === b.senderId &&
    a.seq === b.seq &&
    a.ciphertext !== null &&
    b.ciphertext !== null &&
    equalBytes(a.ciphertext, b.ciphertext);
  const pendingKey = (conversationId: string, sender: string, keyId: string) =>
    `${conversationId}\n${sender}\n${keyId}`;
  let waiting = 0;
  const dropWait = (key: string) => {
    waiting -= pending.get(key)?.length ?? 0;
    pending.delete(key);
    requested.delete(key);
  };

  const remember = (message: Message, outcome: Outcome & { ok: true }) => {
    recent.set(versionOf(message), { outcome, from: message });
    if (recent.size > RECENT_LIMIT) recent.delete(recent.keys().next().value!);
  };
  /** The newest version (`editedAt`, '' for the original) handed over per message id. */
  const shown = new Map<string, string>();
  /**
   * Places in senders' chains this device has read are kept with the sender keys (in the
   * store, so across restarts): a message failing at one of them is a copy of something read
   * (a replay, or bytes changed so that they fail), not a message to ask for again. A place is
   * noted once its content is with the app (`settle`), not when it decrypts: an app stopped in
   * between gets the event again, finds the key used but the place not read, and asks for it.
   * Content resent under a key this device does not hold has no record to go in: those places
   * are remembered here (bounded) instead.
   */
  const readUnkeyed = new Set<string>();
  const senderOf = (place: Place) => addressOf(place.sender.userId, place.sender.deviceId);
  /** Contents opened and not yet noted read, with their place. */
  const unsettled = new WeakMap<Outcome, { conversationId: string; place: Place }>();
  /** Notes the place of `opened` read, once (it is with the app now). */
  async function settle(opened: Outcome) {
    const at = unsettled.get(opened);
    if (!at) return;
    unsettled.delete(opened);
    const { conversationId, place } = at;
    const key = placeKey(conversationId, place);
    unclaimed.delete(key); // read: no content for that place is delivered again
    const sender = senderOf(place);
    let noted = false;
    try {
      noted = await queue(lanes.inbound(conversationId, sender), () =>
        noteGroupMessageRead(store, conversationId, sender, place.keyId, place.iteration),
      );
    } catch (error) {
      // The app has the content: it must not be handed over again for a store that failed.
      deps.report(error);
    }
    if (noted) return;
    readUnkeyed.add(key);
    if (readUnkeyed.size > MAX_READ_PLACES) readUnkeyed.delete(readUnkeyed.values().next().value!);
  }
  /**
   * Places read here while their key was not held go into the key's record once it comes, so
   * they stay read across a restart, as every other read place does (in memory only, a restarted
   * app would take the real bytes under the key for a new message). A note that fails is
   * reported, and the place stays in memory.
   */
  async function keepUnkeyedReads(conversationId: string, sender: string, keyId: string) {
    const prefix = `${conversationId}\n${sender}\n${keyId}\n`;
    for (const key of readUnkeyed) {
      if (!key.startsWith(prefix)) continue;
      const iteration = Number(key.slice(prefix.length));
      try {
        // Kept only while the record still has it: its bounded ranges may drop an old one.
        const kept = await queue(
          lanes.inbound(conversationId, sender),
          async () =>
            (await noteGroupMessageRead(store, conversationId, sender, keyId, iteration)) &&
            (await wasGroupMessageRead(store, conversationId, sender, keyId, iteration)),
        );
        if (kept) readUnkeyed.delete(key);
      } catch (error) {
        deps.report(error);
      }
    }
  }
  /** Whether a place was read here; a record that does not read is reported and counts as not. */
  const placeRead = async (conversationId: string, place: Place) =>
    readUnkeyed.has(placeKey(conversationId, place)) ||
    wasGroupMessageRead(store, conversationId, senderOf(place), place.keyId, place.iteration).catch(
      (error: unknown) => {
        deps.report(error);
        return false;
      },
    );
  async function wasRead(message: Message): Promise<boolean> {
    const place = placeOf(message);
    return place !== undefined && placeRead(message.conversationId, place);
  }
  /** Worth asking its sender for: unreadable with its key here, and not a copy of one read. */
  const askable = async (message: Message, outcome: Outcome) =>
    !outcome.ok && !outcome.missing && !(await wasRead(message));

  const remembered = (message: Message) => {
    const known = recent.get(versionOf(message));
    return known && sameMessage(known.from, message) ? known.outcome : undefined;
  };

  /**
   * Hands a decrypted message to the app (`late` when it waited for its key), then notes its
   * place read: if the app's handler throws, the message event comes again and reads the same
   * (a late one is for the app's `retry`).
   */
  async function deliver(
    message: Message,
    opened: Extract<Outcome, { ok: true }>,
    late: boolean,
  ): Promise<void> {
    const version = message.editedAt ?? '';
    // Late, it may be too late: gone by its timer, or older than an edit already shown.
    const tooLate =
      late &&
      ((message.expiresAt !== null && Date.parse(message.expiresAt) <= now()) ||
        (shown.get(message.id) ?? '') > version);
    if (!tooLate) {
      shown.delete(message.id);
      shown.set(message.id, version);
      if (shown.size > RECENT_LIMIT) shown.delete(shown.keys().next().value!);
      await deps.deliver({
        message,
        contentType: opened.contentType,
        body: opened.body,
        late,
        edited: message.editedAt !== null,
      });
    }
    await settle(opened);
  }

  async function decrypt(message: Message): Promise<Outcome> {
    const known = remembered(message);
    if (known) return known;
    const { ciphertext } = message;
    if (ciphertext === null) return { ok: false, reason: 'decrypt_failed' };
    let missing: Missing | undefined;
    try {
      const sealed = sealedBy({ ...message, ciphertext });
      const sender = addressOf(message.senderId, sealed.device);
      const { keyId, iteration } = parseSenderKeyMessage(sealed.bytes);
      missing = { keyId: toBase64(keyId), device: sealed.device };
      const place = {
        sender: { userId: message.senderId, deviceId: sealed.device },
        keyId: missing.keyId,
        iteration,
      };
      // Read, and noted in memory only (the store failed, or no key was held): a copy, whose
      // key the record may still hold (content resent for a place whose key waits).
      if (readUnkeyed.has(placeKey(message.conversationId, place)))
        return { ok: false, reason: 'decrypt_failed' };
      const plaintext = await queue(lanes.inbound(message.conversationId, sender), () =>
        decryptGroup(store, message.conversationId, sender, sealed.bytes, sealed.context(sender)),
      );
      const outcome = { ok: true as const, ...decodeContent(plaintext) };
      remember(message, outcome);
      unsettled.set(outcome, { conversationId: message.conversationId, place });
      return outcome;
    } catch (error) {
      if (isCryptoError(error, 'UNKNOWN_KEY') && missing !== undefined)
        return { ok: false, reason: 'missing_key', missing };
      if (isCryptoError(error, 'TOO_MANY_SKIPPED') && missing !== undefined)
        return { ok: false, reason: 'missing_key', missing: { ...missing, behind: true } };
      // Anything else (a place used: a replay; bytes that fail) is asked for unless read here.
      return { ok: false, reason: 'decrypt_failed' };
    }
  }

  const requested = new Set<string>();
  /**
   * `conversation\nsender` pairs asked to move this device's copy forward (`behind`): only an
   * answer to such a request may do it, not any share that says `forward`.
   */
  const behindAsked = new Set<string>();

  /** Sends a request to one of a sender's devices, pairwise (so the server learns nothing). */
  async function askDevice(conversationId: string, to: DeviceRef, payload: DevicePayload) {
    const listed = async () =>
      (await directory.devicesOf(to.userId)).find((d) => d.deviceId === to.deviceId);
    let device = await listed();
    if (!device) {
      directory.forget(to.userId); // a list from before that device came?
      device = await listed();
    }
    if (!device) return; // that device is gone: nobody can answer for it any more
    const [ready] = await directory.ensureSessions(to.userId, [device]);
    if (!ready) return;
    const address = addressOf(to.userId, to.deviceId);
    const ciphertext = await queue(lanes.pair(address), () =>
      encryptToDevice(store, address, encodeDevicePayload(payload)),
    );
    await transport.sendToDevices(
      [
        {
          userId: to.userId,
          deviceId: to.deviceId,
          contentType: E2EE_DEVICE_CONTENT_TYPE,
          ciphertext: bytesToBase64(ciphertext),
        },
      ],
      false,
      conversationId,
    );
  }

  /** Asks the sending device to share its key again. */
  async function requestKey(message: Message, { keyId, device: sealer, behind }: Missing) {
    const me = await deps.me();
    if (message.senderId === me.userId && sealer === me.deviceId) return;
    if (behind)
      behindAsked.add(`${message.conversationId}\n${addressOf(message.senderId, sealer)}`);
    const { conversationId } = message;
    await askDevice(
      conversationId,
      { userId: message.senderId, deviceId: sealer },
      { type: 'key-request', conversationId, keyId, ...(behind ? { behind } : {}) },
    );
  }

  /**
   * Messages asked for as content, by conversation, sealing device, key and iteration: each
   * place's messages (the server may show the same bytes as more than one; only the one the
   * sender names gets the content).
   */
  const resendAsked = new Map<string, Message[]>();
  /**
   * Resends for an asked place naming a message not (yet) here: the server showed a copy of it
   * first, which was asked for, and the sender answered for the original, which may come next.
   * The sender answers a place once in ten minutes, so without this the original would wait
   * that long.
   */
  const unclaimed = new Map<string, Extract<DevicePayload, { type: 'resend' }>>();
  const sameVersion = (
    message: Message,
    named: { messageId: string; seq: number; editedAt: string | null },
  ) =>
    message.id === named.messageId &&
    message.seq === named.seq &&
    message.editedAt === named.editedAt;
  const placeKey = (conversationId: string, { sender, keyId, iteration }: Place) =>
    `${conversationId}\n${addressOf(sender.userId, sender.deviceId)}\n${keyId}\n${iteration}`;

  /**
   * Asks the devices that sealed these messages for their content (one request per device and
   * key, up to 100 messages each). Each message is asked once unless `force` (the app's retry).
   */
  async function askResend(messages: Message[], force: boolean) {
    const me = await deps.me();
    const requests = new Map<
      string,
      { sender: DeviceRef; conversationId: string; keyId: string; iterations: number[] }
    >();
    for (const message of messages) {
      const place = placeOf(message);
      if (!place) continue; // bytes that do not even parse name nobody to ask
      if (place.sender.userId === me.userId && place.sender.deviceId === me.deviceId) continue;
      const key = placeKey(message.conversationId, place);
      if (await fromUnclaimed(message)) continue;
      const asked = resendAsked.get(key) ?? [];
      const listed = asked.some((m) =>
        sameVersion(m, { messageId: message.id, seq: message.seq, editedAt: message.editedAt }),
      );
      const before = asked.length > 0;
      if (!listed) asked.push(message);
      if (asked.length > MAX_SHOWN_PER_PLACE) asked.shift();
      resendAsked.delete(key); // newest last, so the bound below gives up the oldest
      resendAsked.set(key, asked);
      // At most MAX_WAITING messages in all (the server chooses how many it shows per place).
      let total = 0;
      for (const list of resendAsked.values()) total += list.length;
      for (const [oldest, list] of resendAsked) {
        if (total <= MAX_WAITING) break;
        resendAsked.delete(oldest);
        total -= list.length;
      }
      if (before && !force) continue;
      const { sender, keyId } = place;
      const group = `${message.conversationId}\n${addressOf(sender.userId, sender.deviceId)}\n${keyId}`;
      const request = requests.get(group) ?? {
        sender,
        conversationId: message.conversationId,
        keyId,
        iterations: [],
      };
      request.iterations.push(place.iteration);
      requests.set(group, request);
    }
    for (const { sender, conversationId, keyId, iterations } of requests.values())
      for (let i = 0; i < iterations.length; i += MAX_RESEND_ITERATIONS)
        await askDevice(conversationId, sender, {
          type: 'resend-request',
          conversationId,
          keyId,
          iterations: iterations.slice(i, i + MAX_RESEND_ITERATIONS),
        });
  }

  const askResendInBackground = (messages: Message[], force = false) =>
    void askResend(messages, force).catch((error: unknown) => deps.report(error));

  /** A resend from the device that sealed the message: delivered late if it fits one asked for. */
  async function takeResend(from: DeviceRef, payload: Extract<DevicePayload, { type: 'resend' }>) {
    const { conversationId, keyId, iteration } = payload;
    const key = placeKey(conversationId, { sender: from, keyId, iteration });
    const asked = resendAsked.get(key);
    // Never asked for, or read here since.
    if (!asked || (await placeRead(conversationId, { sender: from, keyId, iteration }))) return;
    // Only for the very message (and version) asked: one the server copied elsewhere, an
    // edit moved to another message, or an older edit shown as current, does not get it.
    const message = asked.find((m) => sameVersion(m, payload));
    if (!message) {
      unclaimed.delete(key);
      unclaimed.set(key, payload);
      if (unclaimed.size > MAX_UNCLAIMED) unclaimed.delete(unclaimed.keys().next().value!);
      return;
    }
    resendAsked.delete(key);
    await deliverResent(message, payload);
  }

  /**
   * Delivers `message` from a resend that came for it before it did (asked for a copy of it
   * shown first); false when there is none.
   */
  async function fromUnclaimed(message: Message): Promise<boolean> {
    const place = placeOf(message);
    if (!place || unclaimed.size === 0) return false;
    const key = placeKey(message.conversationId, place);
    const answered = unclaimed.get(key);
    if (!answered || !sameVersion(message, answered)) return false;
    unclaimed.delete(key);
    return deliverResent(message, answered);
  }

  /**
   * The content a resend carried, delivered late as `message` (which it names exactly); false
   * when it is not delivered.
   */
  async function deliverResent(
    message: Message,
    payload: Extract<DevicePayload, { type: 'resend' }>,
  ): Promise<boolean> {
    // Read meanwhile (its key came after all), or a place this device has read: never twice.
    if (remembered(message) || (await wasRead(message))) return false;
    let content;
    try {
      content = decodeContent(payload.content);
    } catch (error) {
      deps.report(error);
      return false;
    }
    const outcome = { ok: true as const, ...content };
    remember(message, outcome);
    const place = placeOf(message);
    if (place) unsettled.set(outcome, { conversationId: message.conversationId, place });
    await deliver(message, outcome, true);
    return true;
  }

  function wait(message: Message, missing: Missing, force: boolean) {
    const { keyId, device: sealer } = missing;
    const sender = addressOf(message.senderId, sealer);
    const key = pendingKey(message.conversationId, sender, keyId);
    const list = pending.get(key) ?? [];
    const version = versionOf(message);
    if (!list.some((m) => versionOf(m) === version)) {
      list.push(message);
      waiting += 1;
    }
    pending.set(key, list);
    // Oldest first (a Map keeps insertion order).
    while (waiting > MAX_WAITING) dropWait(pending.keys().next().value!);
    if (!pending.has(key)) return;
    if (requested.has(key) && !force) return;
    requested.add(key);
    // In the background: the stream goes on while the request travels.
    requestKey(message, missing).catch((error: unknown) => {
      requested.delete(key);
      deps.report(error);
    });
  }

  async function flushPending(conversationId: string, sender: string, keyId: string) {
    const key = pendingKey(conversationId, sender, keyId);
    const held = pending.get(key);
    if (!held) return;
    dropWait(key);
    const failed: Message[] = [];
    for (const message of [...held].sort((a, b) => a.seq - b.seq)) {
      try {
        const outcome = await decrypt(message);
        if (outcome.ok) {
          await deliver(message, outcome, true);
        } else {
          // Still too far ahead of the key that came: asked for the chain as it is now.
          if (outcome.missing) wait(message, outcome.missing, false);
          else if (await askable(message, outcome)) failed.push(message);
          await deps.undecryptable({ message, reason: outcome.reason });
        }
      } catch (error) {
        // The app's handler threw. The envelope that brought the key would not bring this back
        // if handed over again (its pairwise message is used): the others go on, and the
        // app's `retry` delivers this one (its content is remembered).
        deps.report(error);
      }
    }
    // Still unreadable with the key here (say, a gap the chain moved past): ask for content.
    if (failed.length > 0) askResendInBackground(failed);
  }

  /**
   * Decrypts a pairwise message from `from`'s device; throws (after repairing) when it cannot.
   * The session that opens it (a new one from a prekey message, the current one or an archived
   * one) must have the keys the server lists for that device and this device trusts, checked in
   * the session's lane before anything is stored: a server that names someone else's message as
   * that device's gets nothing kept, and a check that fails (say, the list cannot be fetched)
   * refuses the message too.
   */
  async function openFrom(from: DeviceRef, ciphertext: Uint8Array): Promise<Uint8Array> {
    const address = addressOf(from.userId, from.deviceId);
    const prekey = isPreKeyMessage(ciphertext);
    let refused = false;
    const checkRemote = async (remote: PublicDeviceKeys) => {
      try {
        await senderIdentity.require(from, remote);
      } catch (error) {
        refused = true;
        throw error;
      }
    };
    try {
      // Before the session's lane, not inside it (see `vouch`); the lane's check then holds the
      // session to the keys this allowed.
      if (prekey) await senderIdentity.vouch(from, parsePreKeyMessage(ciphertext).sender);
      return await queue(lanes.pair(address), () =>
        decryptFromDevice(store, address, ciphertext, { checkRemote }),
      );
    } catch (error) {
      // A session both sides may no longer share (e.g. both started one at once): our next
      // message to them runs X3DH again. Ours is kept (archived behind the new one), not
      // deleted: one unreadable envelope, which whoever relays them can make up, must not cost
      // what they already sent under it. A replay is just ignored, and so is a message refused
      // for its keys: the session is not at fault (a send checks the keys for itself).
      if (!prekey && !refused && !isCryptoError(error, 'DUPLICATE_MESSAGE')) {
        directory.renew(address);
        deps.sessionReset(address);
      }
      throw error;
    }
  }

  async function openEnvelope(envelope: Envelope): Promise<Uint8Array | null> {
    try {
      return await openFrom(
        { userId: envelope.senderId, deviceId: envelope.senderDeviceId },
        envelope.ciphertext,
      );
    } catch (error) {
      // Not given up for a check that could not be made: handed over again (see the class).
      if (error instanceof SenderCheckUnavailable) throw error;
      deps.report(error);
      return null;
    }
  }

  return {
    /** For history pages: the content is the app's once this returns. */
    async decrypt(message) {
      const outcome = await decrypt(message);
      await settle(outcome);
      return outcome;
    },
    openFrom,
    async handleMessage(message) {
      const outcome = await decrypt(message);
      if (outcome.ok) {
        await deliver(message, outcome, false);
        return;
      }
      if (await fromUnclaimed(message)) return;
      if (outcome.missing) wait(message, outcome.missing, false);
      else if (await askable(message, outcome)) askResendInBackground([message]);
      await deps.undecryptable({ message, reason: outcome.reason });
    },

    async handleEnvelope(envelope) {
      if (envelope.contentType !== E2EE_DEVICE_CONTENT_TYPE) return;
      const plaintext = await openEnvelope(envelope);
      if (!plaintext) return;
      let payload;
      try {
        payload = decodeDevicePayload(plaintext);
      } catch (error) {
        deps.report(error);
        return;
      }
      const sender = addressOf(envelope.senderId, envelope.senderDeviceId);
      // Keys and requests count only as the server stamped them: sent by a member of that
      // conversation to a member. Anyone may send anyone an envelope, and a stranger's made-up
      // shares would otherwise pile up in the store for conversations they are not in.
      if (envelope.conversationId !== payload.conversationId) {
        deps.report(
          new Error(`@mvp/sdk: ${sender} sent a key envelope not stamped with its conversation`),
        );
        return;
      }
      const from = { userId: envelope.senderId, deviceId: envelope.senderDeviceId };
      switch (payload.type) {
        case 'key-request':
          deps.keyRequested(payload.conversationId, from, payload.keyId, payload.behind === true);
          return;
        case 'resend-request':
          deps.resendRequested(payload.conversationId, from, payload.keyId, payload.iterations);
          return;
        case 'resend':
          return takeResend(from, payload);
        case 'key-gone': {
          // The key they no longer use: what waits for it is asked for as content.
          const key = pendingKey(payload.conversationId, sender, payload.keyId);
          const held = pending.get(key);
          if (!held) return;
          dropWait(key);
          askResendInBackground(held);
          return;
        }
        case 'sender-key':
          break;
      }
      const { conversationId, distribution } = payload;
      let keyId: string;
      try {
        const key = await queue(lanes.inbound(conversationId, sender), () =>
          receiveSenderKey(store, conversationId, sender, distribution, {
            forward: payload.forward === true && behindAsked.delete(`${conversationId}\n${sender}`),
          }),
        );
        keyId = toBase64(key.keyId);
      } catch (error) {
        deps.report(error);
        return;
      }
      await keepUnkeyedReads(conversationId, sender, keyId);
      await flushPending(conversationId, sender, keyId);
    },

    async retry(message) {
      const outcome = await decrypt(message);
      if (outcome.ok) {
        const version = versionOf(message);
        for (const [key, list] of pending) {
          if (!key.startsWith(`${message.conversationId}\n`)) continue;
          const rest = list.filter((m) => versionOf(m) !== version);
          waiting -= list.length - rest.length;
          if (rest.length > 0) pending.set(key, rest);
          else pending.delete(key);
        }
        await deliver(message, outcome, true);
        return true;
      }
      if (outcome.missing) wait(message, outcome.missing, true);
      else if (!(await wasRead(message))) askResendInBackground([message], true);
      return false;
    },

    forgetMessages(conversationId, seqs) {
      for (const [key, list] of pending) {
        if (!key.startsWith(`${conversationId}\n`)) continue;
        const rest = list.filter((m) => !seqs.includes(m.seq));
        if (rest.length === 0) {
          dropWait(key);
          continue;
        }
        waiting -= list.length - rest.length;
        pending.set(key, rest);
      }
      for (const [key, asked] of resendAsked) {
        const rest = asked.filter(
          (m) => m.conversationId !== conversationId || !seqs.includes(m.seq),
        );
        if (rest.length === 0) resendAsked.delete(key);
        else resendAsked.set(key, rest);
      }
      for (const [key, payload] of unclaimed)
        if (payload.conversationId === conversationId && seqs.includes(payload.seq))
          unclaimed.delete(key);
    },

    async forgetConversation(conversationId) {
      for (const key of [...pending.keys()])
        if (key.startsWith(`${conversationId}\n`)) dropWait(key);
      for (const key of [...resendAsked.keys()])
        if (key.startsWith(`${conversationId}\n`)) resendAsked.delete(key);
      for (const key of [...unclaimed.keys()])
        if (key.startsWith(`${conversationId}\n`)) unclaimed.delete(key);
      // A failure leaves keys whole: nothing is lost but the clean-up.
      const senders = await Promise.resolve(store.inboundSenderKeySenders?.(conversationId)).catch(
        (error: unknown) => void deps.report(error),
      );
      for (const sender of senders ?? [])
        await queue(lanes.inbound(conversationId, sender), () =>
          retireSenderKeysOf(store, conversationId, sender),
        ).catch((error: unknown) => deps.report(error));
    },
  };
}
