/**
 * Reading: conversation messages under senders' keys, and the pairwise envelopes that carry
 * those keys (and requests for them). A message whose key is missing waits here, is reported
 * as undecryptable, and triggers a key request to its sender's device; the key's arrival
 * decrypts it late.
 */
import {
  type CryptoStore,
  WireType,
  decryptFromDevice,
  decryptGroup,
  encryptToDevice,
  isCryptoError,
  messageType,
  parseSenderKeyMessage,
  receiveSenderKey,
  toBase64,
} from '@mvp/crypto';
import { bytesToBase64 } from '../base64';
import type { Envelope, Message } from '../messaging';
import type { Directory } from './directory';
import {
  E2EE_CONTENT_TYPE,
  E2EE_DEVICE_CONTENT_TYPE,
  addressOf,
  decodeContent,
  decodeDevicePayload,
  encodeDevicePayload,
  groupContext,
} from './payloads';
import { lanes, type KeyedQueue } from './serial';
import type { DeviceRef, E2eeTransport, Me } from './transport';

type Awaitable<T> = T | Promise<T>;

export type DecryptedMessage = {
  /** The stored message as the server has it (its `ciphertext` stays the encrypted bytes). */
  message: Message;
  contentType: string;
  body: Uint8Array;
  /** True when it could not be read at first and is delivered after its key arrived. */
  late: boolean;
};

export type UndecryptableReason =
  /** This device has not (yet) received the sender key: a key request is on its way. */
  | 'missing_key'
  /** The key is here but the bytes did not verify or decrypt (tampered, replayed, corrupt). */
  | 'decrypt_failed';

export type UndecryptableMessage = { message: Message; reason: UndecryptableReason };

type Outcome =
  | { ok: true; contentType: string; body: Uint8Array }
  | { ok: false; reason: UndecryptableReason; keyId?: string };

const RECENT_LIMIT = 500;

export type Inbound = {
  /** For `message.new`: decrypts, then hands the result to the app (or reports it unreadable). */
  handleMessage(message: Message): Promise<void>;
  /** For `envelope`: handles ours (sender keys, key requests); others are left to the app. */
  handleEnvelope(envelope: Envelope): Promise<void>;
  /** Tries again now; when the key is still missing, asks the sender's device once more. */
  retry(message: Message): Promise<boolean>;
  /** Decrypts without delivering (history pages); the result is remembered by message id. */
  decrypt(message: Message): Promise<Outcome>;
  /** Left the conversation: what waits for its keys will never be readable. */
  forgetConversation(conversationId: string): void;
};

export function isE2eeMessage(message: Message): boolean {
  return message.contentType === E2EE_CONTENT_TYPE && message.ciphertext !== null;
}

export function createInbound(deps: {
  store: CryptoStore;
  transport: E2eeTransport;
  directory: Directory;
  queue: KeyedQueue;
  me: () => Promise<Me>;
  deliver(decrypted: DecryptedMessage): Awaitable<void>;
  undecryptable(event: UndecryptableMessage): Awaitable<void>;
  /** A key request reached us from `from`: answer it if they may have the key. */
  keyRequested(conversationId: string, from: DeviceRef, keyId: string): void;
  /** A pairwise session had to be dropped (the next send starts a new one). */
  sessionReset(address: string): void;
  report(error: unknown): void;
}): Inbound {
  const { store, transport, directory, queue } = deps;
  /** Messages waiting for a sender key, by `conversation \n sender \n keyId`, in arrival order. */
  const pending = new Map<string, Message[]>();
  /** Plaintexts by message id: a redelivered event (the app's handler threw) reads the same. */
  const recent = new Map<string, Outcome & { ok: true }>();
  const pendingKey = (conversationId: string, sender: string, keyId: string) =>
    `${conversationId}\n${sender}\n${keyId}`;

  const remember = (id: string, outcome: Outcome & { ok: true }) => {
    recent.set(id, outcome);
    if (recent.size > RECENT_LIMIT) recent.delete(recent.keys().next().value!);
  };

  async function decrypt(message: Message): Promise<Outcome> {
    const known = recent.get(message.id);
    if (known) return known;
    const bytes = message.ciphertext;
    if (bytes === null) return { ok: false, reason: 'decrypt_failed' };
    const sender = addressOf(message.senderId, message.senderDeviceId);
    let keyId: string | undefined;
    try {
      keyId = toBase64(parseSenderKeyMessage(bytes).keyId);
      const plaintext = await queue(lanes.inbound(message.conversationId, sender), () =>
        decryptGroup(
          store,
          message.conversationId,
          sender,
          bytes,
          groupContext(message.conversationId, sender),
        ),
      );
      const outcome = { ok: true as const, ...decodeContent(plaintext) };
      remember(message.id, outcome);
      return outcome;
    } catch (error) {
      if (isCryptoError(error, 'UNKNOWN_KEY') && keyId !== undefined)
        return { ok: false, reason: 'missing_key', keyId };
      return { ok: false, reason: 'decrypt_failed' };
    }
  }

  const requested = new Set<string>();

  /** Asks the sending device to share its key again (pairwise, so the server learns nothing). */
  async function requestKey(message: Message, keyId: string) {
    const me = await deps.me();
    if (message.senderId === me.userId && message.senderDeviceId === me.deviceId) return;
    const device = (await directory.devicesOf(message.senderId)).find(
      (d) => d.deviceId === message.senderDeviceId,
    );
    if (!device) return; // that device is gone: nobody can share its key any more
    const [ready] = await directory.ensureSessions(message.senderId, [device]);
    if (!ready) return;
    const address = addressOf(message.senderId, message.senderDeviceId);
    const payload = encodeDevicePayload({
      type: 'key-request',
      conversationId: message.conversationId,
      keyId,
    });
    const ciphertext = await queue(lanes.pair(address), () =>
      encryptToDevice(store, address, payload),
    );
    await transport.sendToDevices(
      [
        {
          userId: message.senderId,
          deviceId: message.senderDeviceId,
          contentType: E2EE_DEVICE_CONTENT_TYPE,
          ciphertext: bytesToBase64(ciphertext),
        },
      ],
      false,
    );
  }

  function wait(message: Message, keyId: string, force: boolean) {
    const sender = addressOf(message.senderId, message.senderDeviceId);
    const key = pendingKey(message.conversationId, sender, keyId);
    const list = pending.get(key) ?? [];
    if (!list.some((m) => m.id === message.id)) list.push(message);
    pending.set(key, list);
    if (requested.has(key) && !force) return;
    requested.add(key);
    // In the background: the stream goes on while the request travels.
    requestKey(message, keyId).catch((error: unknown) => {
      requested.delete(key);
      deps.report(error);
    });
  }

  async function flushPending(conversationId: string, sender: string, keyId: string) {
    const key = pendingKey(conversationId, sender, keyId);
    const waiting = pending.get(key);
    if (!waiting) return;
    pending.delete(key);
    requested.delete(key);
    for (const message of [...waiting].sort((a, b) => a.seq - b.seq)) {
      const outcome = await decrypt(message);
      if (outcome.ok) {
        await deps.deliver({
          message,
          contentType: outcome.contentType,
          body: outcome.body,
          late: true,
        });
      } else {
        await deps.undecryptable({ message, reason: outcome.reason });
      }
    }
  }

  async function openEnvelope(envelope: Envelope): Promise<Uint8Array | null> {
    const address = addressOf(envelope.senderId, envelope.senderDeviceId);
    const prekey = (() => {
      try {
        return messageType(envelope.ciphertext) === WireType.PreKeyMessage;
      } catch {
        return false;
      }
    })();
    try {
      const plaintext = await queue(lanes.pair(address), () =>
        decryptFromDevice(store, address, envelope.ciphertext),
      );
      if (prekey && !(await identityMatches(envelope))) {
        await queue(lanes.pair(address), () => store.deleteSession(address));
        deps.report(new Error(`@mvp/sdk: ${address} used keys the directory does not list`));
        return null;
      }
      return plaintext;
    } catch (error) {
      deps.report(error);
      // A session both sides no longer share (e.g. both started one at once): drop ours, so
      // the next message either way runs X3DH again. A replay is just ignored.
      if (!prekey && !isCryptoError(error, 'DUPLICATE_MESSAGE')) {
        await queue(lanes.pair(address), () => store.deleteSession(address));
        deps.sessionReset(address);
      }
      return null;
    }
  }

  /** A new session from a prekey message: the sender's keys must be the ones the server lists. */
  async function identityMatches(envelope: Envelope): Promise<boolean> {
    const session = await store.getSession(addressOf(envelope.senderId, envelope.senderDeviceId));
    if (!session) return false;
    const listed = async () =>
      (await directory.devicesOf(envelope.senderId)).find(
        (d) => d.deviceId === envelope.senderDeviceId,
      );
    let device = await listed();
    if (device?.identityKey !== toBase64(session.remote.identityKey)) {
      directory.forget(envelope.senderId); // maybe they just published it: ask again
      device = await listed();
    }
    return device?.identityKey === toBase64(session.remote.identityKey);
  }

  return {
    decrypt,
    async handleMessage(message) {
      const outcome = await decrypt(message);
      if (outcome.ok) {
        await deps.deliver({
          message,
          contentType: outcome.contentType,
          body: outcome.body,
          late: false,
        });
        return;
      }
      if (outcome.reason === 'missing_key' && outcome.keyId) wait(message, outcome.keyId, false);
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
      if (payload.type === 'key-request') {
        deps.keyRequested(
          payload.conversationId,
          { userId: envelope.senderId, deviceId: envelope.senderDeviceId },
          payload.keyId,
        );
        return;
      }
      const { conversationId, distribution } = payload;
      let keyId: string;
      try {
        const key = await queue(lanes.inbound(conversationId, sender), () =>
          receiveSenderKey(store, conversationId, sender, distribution),
        );
        keyId = toBase64(key.keyId);
      } catch (error) {
        deps.report(error);
        return;
      }
      await flushPending(conversationId, sender, keyId);
    },

    async retry(message) {
      const outcome = await decrypt(message);
      if (outcome.ok) {
        const sender = addressOf(message.senderId, message.senderDeviceId);
        for (const [key, list] of pending) {
          if (!key.startsWith(`${message.conversationId}\n${sender}\n`)) continue;
          const rest = list.filter((m) => m.id !== message.id);
          if (rest.length > 0) pending.set(key, rest);
          else pending.delete(key);
        }
        await deps.deliver({
          message,
          contentType: outcome.contentType,
          body: outcome.body,
          late: true,
        });
        return true;
      }
      if (outcome.reason === 'missing_key' && outcome.keyId) wait(message, outcome.keyId, true);
      return false;
    },

    forgetConversation(conversationId) {
      for (const key of [...pending.keys()])
        if (key.startsWith(`${conversationId}\n`)) {
          pending.delete(key);
          requested.delete(key);
        }
    },
  };
}
