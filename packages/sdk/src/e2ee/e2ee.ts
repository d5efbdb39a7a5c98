/**
 * `client.e2ee`: the device's keys, encrypted sends and decrypted receives on top of the
 * outbox and the sync stream. Everything cryptographic is @mvp/crypto; this file wires it.
 */
import { type CryptoStore, createMemoryStore } from '@mvp/crypto';
import type { Message, SyncEvent } from '../messaging';
import type { MvpExpiry } from '../expiry';
import type { MvpOutbox, OutboxHandle } from '../outboxTypes';
import { reportTo } from '../reportTo';
import type { MvpSync, Subscription } from '../syncTypes';
import type { Awaitable } from '../types';
import { createDirectory } from './directory';
import {
  createInbound,
  isE2eeMessage,
  type DecryptedMessage,
  type UndecryptableMessage,
  type UndecryptableReason,
} from './inbound';
import { createOutbound } from './outbound';
import { createPairwise, type PairwiseCrypto } from './pairwise';
import { E2EE_CONTENT_TYPE, addressOf } from './payloads';
import { createPrekeys } from './prekeys';
import { safetyNumbersListed, safetyNumbersWith, type SafetyNumber } from './safetyNumbers';
import { createKeyedQueue, lanes } from './serial';
import type { SendLogStore, SentMessage } from './sendLog';
import type { E2eeTransport, Me, Verification } from './transport';
import { createTrust, isUntrustedIdentityError, type IdentityChange } from './trust';

export type E2eeOptions = {
  /**
   * Where this device's secrets live (default: memory, so a restart is a new device to peers).
   * Implement `CryptoStore` over your own storage with the `serialize*` helpers to persist.
   */
  store?: CryptoStore;
  /**
   * Where the send log persists: the plaintext of what this device sent in the last day, to
   * send again to a member device that cannot read it (Signal's retry receipts). Without it
   * the log is in memory, and a restarted app cannot answer for what it sent before. Keep it
   * with the `CryptoStore`, in secure storage.
   */
  sendLog?: SendLogStore;
};

export type E2eeOutgoing = {
  /** The real content type (e.g. `text/plain`); it travels inside the ciphertext. */
  contentType: string;
  body: Uint8Array;
  replyToSeq?: number;
  forwarded?: boolean;
};

export type DecryptResult =
  { ok: true; contentType: string; body: Uint8Array } | { ok: false; reason: UndecryptableReason };

export type MvpE2ee = {
  /**
   * Starts the sync stream, creates this device's keys on first use and makes sure the server
   * has them (published with a signed prekey and 100 one-time prekeys). Register `onMessage`
   * and `onUndecryptable` first. Safe to call again; `send` calls it too.
   */
  setup(): Promise<void>;
  /**
   * Encrypts one message for every member device (direct and group conversations alike) and
   * queues it in the outbox: the server sees only `mvp/e2ee` and opaque bytes.
   */
  send(conversationId: string, message: E2eeOutgoing): Promise<OutboxHandle>;
  /**
   * Replaces my message `seq` (sent from any of my devices) with new content, encrypted like a
   * send and queued in the outbox like one (`editSeq` on its item; the handle's `result` is the
   * message as edited). Every member device gets it through `onMessage` with `edited: true`, this
   * one too.
   */
  edit(
    conversationId: string,
    seq: number,
    message: Pick<E2eeOutgoing, 'contentType' | 'body'>,
  ): Promise<OutboxHandle>;
  /**
   * Device-to-device encryption over the pairwise (X3DH, Double Ratchet) sessions: for one
   * device of someone's, started on first use. `client.calls` uses it for SDP and ICE.
   */
  readonly pairwise: PairwiseCrypto;
  /** Decrypted messages, in stream order (late ones, `late: true`, once their key arrived). */
  onMessage(handler: (message: DecryptedMessage) => Awaitable<void>): Subscription;
  /** A message this device cannot read (yet): never dropped silently. */
  onUndecryptable(handler: (event: UndecryptableMessage) => Awaitable<void>): Subscription;
  /** Background failures: key uploads, key requests and answers, unreadable envelopes. */
  onError(handler: (error: unknown) => void): Subscription;
  /**
   * Tries an undecryptable message again: true when it was read now (and went to `onMessage`,
   * unless it expired meanwhile or a newer edit of it was shown);
   * otherwise the sender's device is asked again, for the key or (when the key is here and the
   * bytes still do not read) for the content, and `onMessage` gets it later if it answers.
   */
  retry(message: Message): Promise<boolean>;
  /** Decrypts a message from history without delivering it; a message key works once, so keep the result. */
  decrypt(message: Message): Promise<DecryptResult>;
  /** My safety number with each of their devices. */
  safetyNumbers(userId: string): Promise<SafetyNumber[]>;
  /** My safety number with their first device (throws when they have none). */
  safetyNumber(userId: string): Promise<SafetyNumber>;
  /**
   * Records that I compared our safety numbers (`qr` scanned, or `manual`): `compared` is what
   * `safetyNumbers(userId)` gave, one per device, every one of which the user compared. This
   * device keeps exactly those keys as verified; if the server lists anything else now, it
   * throws (show the numbers again). Any later change (new keys, another device) stops my sends
   * to them with `UntrustedIdentityError` until `trustIdentities` or a new verification. The
   * server keeps a copy for my other devices (`device.keys` with `verificationLost`), but the
   * check here does not depend on it.
   */
  markVerified(
    userId: string,
    method: 'qr' | 'manual',
    compared: SafetyNumber[],
  ): Promise<Verification>;
  /**
   * Whether I verified this user (on this device) and the devices the server lists now (asked
   * when not known) are still those I compared.
   */
  isVerified(userId: string): Promise<boolean>;
  /**
   * Accepts the changes `onIdentityChange` told (and `UntrustedIdentityError` carried) after
   * they stopped my sends ("send anyway"); the user is no longer verified. A change not told
   * yet is told and thrown instead, so nothing is accepted unseen.
   */
  trustIdentities(userId: string): Promise<void>;
  /**
   * A user's device keys differ from those this device trusts (trust on first use): a device
   * added, or new keys for one (a reinstall, or someone in between). Show it as Signal shows a
   * changed safety number; `verified: true` means my sends to them now wait for me.
   */
  onIdentityChange(handler: (change: IdentityChange) => void): Subscription;
  /** The store in use (the default memory one unless you passed yours). */
  readonly store: CryptoStore;
};

/**
 * What the send log keeps of a stored message. For an edit, `seq` is the one I edited, not the
 * answer's: the edit's associated data binds that one.
 */
const sentMessageOf = (message: Message, seq = message.seq): SentMessage => ({
  id: message.id,
  seq,
  editedAt: message.editedAt,
  expiresAt: message.expiresAt,
});

export function createE2ee(deps: {
  transport: E2eeTransport;
  sync: MvpSync;
  outbox: MvpOutbox;
  options: E2eeOptions;
  /**
   * The server's time as this device reads it, and local expiries (`client.expiry`): a late
   * delivery or a resend judges a disappearing message by them. Default: this device's clock.
   */
  time?: { now: () => number; onExpired: MvpExpiry['onExpired'] };
}): MvpE2ee {
  const { transport, sync, outbox } = deps;
  const now = deps.time?.now ?? Date.now;
  const store = deps.options.store ?? createMemoryStore();
  const queue = createKeyedQueue();
  const messageHandlers = new Set<(m: DecryptedMessage) => Awaitable<void>>();
  const undecryptableHandlers = new Set<(e: UndecryptableMessage) => Awaitable<void>>();
  const errorHandlers = new Set<(error: unknown) => void>();
  const identityHandlers = new Set<(change: IdentityChange) => void>();
  const listen = <T>(set: Set<T>, handler: T): Subscription => {
    set.add(handler);
    return { unsubscribe: () => void set.delete(handler) };
  };
  const report = (error: unknown) => reportTo(errorHandlers, error);
  const background = (task: Promise<unknown>) => void task.catch(report);

  let who: Promise<Me> | undefined;
  const me = () => {
    who ??= transport.whoAmI();
    who.catch(() => (who = undefined));
    return who;
  };

  const trust = createTrust({
    store,
    announce: (change) => {
      for (const handler of identityHandlers) {
        try {
          handler(change);
        } catch (error) {
          report(error); // an app's handler must not stop the send that found the change
        }
      }
    },
  });
  const directory = createDirectory({ store, transport, queue, trust, report });
  const prekeys = createPrekeys({ store, transport, me, report });
  const outbound = createOutbound({
    store,
    transport,
    directory,
    queue,
    me,
    report,
    now,
    sendLogStore: deps.options.sendLog,
  });
  const inbound = createInbound({
    store,
    transport,
    directory,
    queue,
    me,
    deliver: async (decrypted) => {
      for (const handler of messageHandlers) await handler(decrypted);
    },
    undecryptable: async (event) => {
      for (const handler of undecryptableHandlers) await handler(event);
    },
    now,
    keyRequested: (conversationId, from, keyId, behind) =>
      background(outbound.answerKeyRequest(conversationId, from, keyId, behind)),
    resendRequested: (conversationId, from, keyId, iterations) =>
      background(outbound.answerResend(conversationId, from, keyId, iterations)),
    sessionReset: (address) => outbound.forgetDevice(address),
    report,
  });

  // Sends queued before a restart go out from the outbox: the send log learns their message.
  outbox.onChange((item) => {
    if (item.state === 'sent' && item.message && item.contentType === E2EE_CONTENT_TYPE)
      outbound.sentLater(
        item.clientMessageId,
        item.conversationId,
        sentMessageOf(item.message, item.editSeq),
      );
  });

  // Gone by its timer here, before (or without) the server's removal: as for that removal.
  deps.time?.onExpired(({ conversationId, seq }) => {
    outbound.forgetSent(conversationId, [seq]);
    inbound.forgetMessages(conversationId, [seq]);
  });

  async function handle(event: SyncEvent) {
    switch (event.type) {
      case 'message.new':
        if (isE2eeMessage(event.message)) await inbound.handleMessage(event.message);
        return;
      case 'message.updated':
        // A deletion for everyone: what I sent of it is never sent again, nor delivered late.
        if (event.message.deletedAt !== null) {
          outbound.forgetSent(event.message.conversationId, [event.message.seq]);
          inbound.forgetMessages(event.message.conversationId, [event.message.seq]);
        }
        // Edits carry new bytes; a deletion (no bytes) or a changed expiry has nothing to read.
        if (isE2eeMessage(event.message) && event.message.editedAt !== null)
          await inbound.handleMessage(event.message);
        return;
      case 'messages.removed':
        if (event.reason === 'expired') outbound.forgetSent(event.conversationId, event.seqs);
        inbound.forgetMessages(event.conversationId, event.seqs); // hidden for me too
        return;
      case 'envelope':
        return inbound.handleEnvelope(event.envelope);
      case 'member.left':
        // Whoever left holds the current key: the next send makes and shares a fresh one.
        return background(outbound.rotate(event.conversationId));
      case 'conversation.left':
        background(outbound.rotate(event.conversationId));
        // Before the next event: a share that comes after a rejoin must not be retired with them.
        return inbound.forgetConversation(event.conversationId);
      case 'keys.low':
        return background(queue(lanes.prekeys, () => prekeys.topUp()));
      case 'device.keys': {
        directory.forget(event.userId);
        if (event.change === 'added') return;
        const address = addressOf(event.userId, event.deviceId);
        if (event.change === 'removed') background(outbound.deviceGone(address));
        else outbound.forgetDevice(address);
        // The session stays: this is only the server's word, and without it a replayed prekey
        // message that used no one-time prekey would start a new session and be read again. One
        // with keys no longer listed opens nothing (`openFrom`), and the next send starts one
        // with the listed keys (`ensureSessions`).
        return;
      }
      default:
        return;
    }
  }

  let subscription: Subscription | undefined;
  let resyncSubscription: Subscription | undefined;
  let ready: Promise<void> | undefined;
  const setup = () => {
    ready ??= (async () => {
      // A resync skipped events, a device's removal among them perhaps: every sender key is
      // replaced before its next use, and every device list asked again.
      resyncSubscription ??= sync.onResync(() => {
        outbound.forgetHolders();
        directory.forgetAll();
      });
      // The stream first: whatever is sent to this device once its keys are out arrives on it.
      subscription ??= sync.onEvent(handle);
      await sync.start();
      await queue(lanes.prekeys, () => prekeys.ensurePublished());
      // My own list: nothing else checks it while this is my only device, so a device added
      // to my account later would be first use, unannounced.
      await directory.check((await me()).userId);
    })();
    ready.catch(() => (ready = undefined));
    return ready;
  };

  const safetyNumbers = (userId: string) => safetyNumbersWith({ store, directory, me }, userId);
  const safetyNumber = async (userId: string) => {
    const [first] = await safetyNumbers(userId);
    if (!first) throw new Error('@mvp/sdk: that user has no device with published keys');
    return first;
  };

  const pairwise = createPairwise({ store, directory, queue, inbound, ready: setup });

  return {
    store,
    setup,
    pairwise,
    async send(conversationId, message) {
      await setup();
      return outbound.encrypt(
        conversationId,
        { contentType: message.contentType, body: message.body },
        (ciphertext, log) => {
          const handle = outbox.send(conversationId, {
            contentType: E2EE_CONTENT_TYPE,
            ciphertext,
            ...(message.replyToSeq === undefined ? {} : { replyToSeq: message.replyToSeq }),
            ...(message.forwarded === undefined ? {} : { forwarded: message.forwarded }),
          });
          log.queued(handle.clientMessageId);
          // A failed send is the app's to see through the handle; the log just never learns it.
          handle.result.then(
            (message) => log.stored(sentMessageOf(message)),
            () => undefined,
          );
          return handle;
        },
      );
    },
    async edit(conversationId, seq, message) {
      await setup();
      return outbound.encrypt(
        conversationId,
        { contentType: message.contentType, body: message.body },
        (ciphertext, log) => {
          const handle = outbox.edit(conversationId, seq, {
            contentType: E2EE_CONTENT_TYPE,
            ciphertext,
          });
          log.queued(handle.clientMessageId);
          handle.result.then(
            (edited) => log.stored(sentMessageOf(edited, seq)),
            () => undefined,
          );
          return handle;
        },
        { seq },
      );
    },
    onMessage: (handler) => listen(messageHandlers, handler),
    onUndecryptable: (handler) => listen(undecryptableHandlers, handler),
    onError: (handler) => listen(errorHandlers, handler),
    retry: (message) => inbound.retry(message),
    async decrypt(message) {
      const outcome = await inbound.decrypt(message);
      return outcome.ok
        ? { ok: true, contentType: outcome.contentType, body: outcome.body }
        : { ok: false, reason: outcome.reason };
    },
    safetyNumbers,
    safetyNumber,
    async markVerified(userId, method, compared) {
      // One list, asked now, for the numbers and for what is recorded as verified: asked twice,
      // the second answer could hold a device the user never compared.
      const { numbers: now, devices } = await safetyNumbersListed({ store, directory, me }, userId);
      const same =
        now.length > 0 &&
        now.length === compared.length &&
        now.every((n) => compared.some((c) => c.deviceId === n.deviceId && c.digits === n.digits));
      if (!same)
        throw new Error('@mvp/sdk: their devices changed since these numbers were compared');
      await directory.verify(userId, devices);
      return transport.verify({ userId, fingerprint: now[0]!.digits, method });
    },
    async isVerified(userId) {
      if (!(await trust.isVerified(userId))) return false;
      // Verified, and the devices listed now are still the ones compared.
      try {
        await directory.check(userId);
        return true;
      } catch (error) {
        if (isUntrustedIdentityError(error)) return false;
        throw error;
      }
    },
    trustIdentities: (userId) => directory.acceptTold(userId),
    onIdentityChange: (handler) => listen(identityHandlers, handler),
  };
}

/** `client.e2ee` when the client was created without `crypto`: every call says how to enable it. */
export function disabledE2ee(): MvpE2ee {
  const off = (): never => {
    throw new Error('@mvp/sdk: end-to-end encryption is off; pass `crypto: {}` to createMvpClient');
  };
  return {
    get store(): CryptoStore {
      return off();
    },
    setup: async () => off(),
    send: async () => off(),
    edit: async () => off(),
    get pairwise(): PairwiseCrypto {
      return off();
    },
    onMessage: off,
    onUndecryptable: off,
    onError: off,
    retry: async () => off(),
    decrypt: async () => off(),
    safetyNumbers: async () => off(),
    safetyNumber: async () => off(),
    markVerified: async () => off(),
    isVerified: async () => off(),
    trustIdentities: async () => off(),
    onIdentityChange: off,
  };
}
