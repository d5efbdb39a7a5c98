/**
 * This device's sender key per conversation: created on the first send, distributed to every
 * member device through pairwise envelopes before a message uses it, replaced when someone
 * who held it is no longer a member, and re-shared on request with current member devices.
 */
import {
  type CryptoStore,
  encryptGroup,
  encryptToDevice,
  outboundSenderKey,
  parseSenderKeyMessage,
  receiveSenderKey,
  rotateOutboundSenderKey,
  toBase64,
} from '@mvp/crypto';
import { bytesToBase64 } from '../base64';
import type { Directory } from './directory';
import {
  E2EE_DEVICE_CONTENT_TYPE,
  addressOf,
  editContext,
  encodeContent,
  encodeDevicePayload,
  encodeEdit,
  groupContext,
  type Content,
  type DevicePayload,
} from './payloads';
import {
  RESEND_MAX_CONTENT_BYTES,
  createSendLog,
  type Sent,
  type SendLogHooks,
  type SendLogStore,
  type SentMessage,
} from './sendLog';
import { lanes, type KeyedQueue } from './serial';
import type { DeviceRef, DirectoryDevice, E2eeTransport, Me, OutgoingEnvelope } from './transport';

/** Tries of a distribution while the server keeps answering DEVICES_CHANGED. */
export const DISTRIBUTION_ATTEMPTS = 4;
const MAX_ENVELOPES = 100;
/** Base64 bytes per call of resends: the call must fit a WebSocket frame (64 KiB by default). */
const RESEND_CALL_BYTES = 48 * 1024;
/**
 * A message's content is sent again to one device once in this long: a member repeating a
 * request cannot make this device upload the same content over and over.
 */
export const RESEND_ANSWER_EVERY_MS = 10 * 60 * 1000;
const MAX_ANSWERED = 10_000;
/**
 * A key request from one device for one key is answered once in this long (taken when it
 * comes, given back if no call was made): each answer costs this account a call of its send
 * budget, so a member's flood must not spend it all, and an answer lost on its way is asked
 * for again by the app's `retry` a few seconds later.
 */
export const KEY_ANSWER_EVERY_MS = 10 * 1000;
/**
 * Answers (key shares, key-gone, resends) to one member's devices, all together, per minute.
 * Each costs this account's send budget, and the throttles above are per asking device: a
 * member with many devices could otherwise spend it all. Past it a request gets no answer
 * (the asking app's `retry` asks again).
 * A small counter of its own: the SDK runs in browsers and React Native, where the server's
 * limiter library does not.
 */
export const ANSWERS_PER_USER_PER_MINUTE = 20;
/** How long an answer waits for the send log's load before it goes by what is loaded. */
const SEND_LOG_LOAD_WAIT_MS = 10_000;
/** Devices that asked for a message before it was stored, kept to answer once it is. */
const MAX_WAITING_ASKERS = 20;

/**
 * Who holds the current sender key of a conversation, as far as this process knows. Kept in
 * memory: a key found in the store without this record (after a restart) is replaced rather
 * than trusted, since whoever left meanwhile may hold it.
 */
type Audience = {
  keyId: string;
  /** The distribution at iteration 0, for key requests from the devices listed then. */
  origin: Uint8Array;
  /**
   * The member devices listed when the key was first shared: only they may read it from the
   * start. Not a device added since (a new one of a member's, or one the server slipped in).
   */
  originDevices?: ReadonlySet<string>;
  users: Set<string>;
  /** Devices (addresses) with this key on their current session: the rest are sent it. */
  devices: Set<string>;
  /**
   * Every device this key was ever sent to, as listed then (address and identity key): only
   * added to. A holder that is no longer listed so (signed out, revoked, its keys changed)
   * makes the next send replace the key, whatever `devices` forgot since (a session reset, which
   * a device can provoke with one bad message, takes it out of `devices`, not out of this).
   */
  holders: Set<string>;
};

export type Outbound = {
  /**
   * Makes sure every member device can read what follows, encrypts one message and hands the
   * ciphertext to `use` (the outbox) in the same turn, so sends keep their encryption order.
   * With `edit`, the bytes are the new version of message `edit.seq` (see payloads.ts).
   * Call `log.queued` with the outbox's client message id (the log keeps the entry from then on,
   * and `sentLater` finds it after a restart), and `log.stored` with the message the server
   * stored it as: from then on its content can be sent again to a member device that cannot
   * read it (and is, to one that asked before).
   */
  encrypt<T>(
    conversationId: string,
    content: Content,
    use: (ciphertext: Uint8Array, log: SendLogHooks) => T,
    edit?: { seq: number },
  ): Promise<T>;
  /**
   * The outbox sent something queued before (by this process or one before a restart): the log
   * entry it was queued as now names the stored message.
   */
  sentLater(clientMessageId: string, conversationId: string, message: SentMessage): void;
  /** Drops this device's sender key: the next send creates and distributes a fresh one. */
  rotate(conversationId: string): Promise<void>;
  /** Messages deleted for everyone or expired: their content is never sent again. */
  forgetSent(conversationId: string, seqs: readonly number[]): void;
  /** A device's session was reset or its identity changed: it needs the key again. */
  forgetDevice(address: string): void;
  /** The stream skipped events (a resync): every key is replaced before its next use. */
  forgetHolders(): void;
  /**
   * A device is gone (signed out, revoked: perhaps stolen): every conversation whose current
   * key it holds gets a fresh one before the next send. Answers those conversations.
   */
  deviceGone(address: string): Promise<string[]>;
  /**
   * A member device could not read a message under `keyId`: share the key again if current.
   * `behind`: its copy is too far behind a message; it gets the chain as it is now, to move to.
   */
  answerKeyRequest(
    conversationId: string,
    from: DeviceRef,
    keyId: string,
    behind?: boolean,
  ): Promise<boolean>;
  /**
   * A member device cannot read these messages of mine (named by key and place in its chain):
   * sends it their content pairwise, for those I still have (sent from this device, in this
   * process, within a day, neither deleted nor expired) that it was listed for when sent, each
   * at most once in `RESEND_ANSWER_EVERY_MS`. Answers how many went.
   */
  answerResend(
    conversationId: string,
    from: DeviceRef,
    keyId: string,
    iterations: number[],
  ): Promise<number>;
};

export function createOutbound(deps: {
  store: CryptoStore;
  transport: E2eeTransport;
  directory: Directory;
  queue: KeyedQueue;
  me: () => Promise<Me>;
  /** Failures of work in the background (requests answered once a message is stored). */
  report?: (error: unknown) => void;
  /** The server's time as this device reads it: the send log's expiries go by it. */
  now?: () => number;
  /** Where the send log persists (the app's; memory only without). */
  sendLogStore?: SendLogStore;
}): Outbound {
  const { store, transport, directory, queue } = deps;
  const report = deps.report ?? (() => undefined);
  const audiences = new Map<string, Audience>();
  const sendLog = createSendLog(deps.now, { store: deps.sendLogStore, report });
  /**
   * When each request was last answered (delivered to the server), by requesting device and
   * what it asked for: answered again only after `every` ms. A failed answer is not counted,
   * so the asker's retry is answered.
   */
  const answered = new Map<string, number>();
  const answeredLately = (key: string, every: number) => {
    const at = answered.get(key);
    return at !== undefined && Date.now() - at < every;
  };
  const markAnswered = (keys: string[]) => {
    for (const key of keys) {
      answered.delete(key);
      answered.set(key, Date.now());
    }
    while (answered.size > MAX_ANSWERED) answered.delete(answered.keys().next().value!);
  };
  /** Answers to each user's devices in the current minute (`ANSWERS_PER_USER_PER_MINUTE`). */
  const answersTo = new Map<string, { since: number; count: number }>();
  /** The minute's count the answer was taken from, or undefined when none is left. */
  const spendAnswer = (userId: string) => {
    const now = Date.now();
    let spent = answersTo.get(userId);
    if (!spent || now - spent.since >= 60_000) {
      answersTo.delete(userId);
      answersTo.set(userId, (spent = { since: now, count: 0 }));
      if (answersTo.size > MAX_ANSWERED) answersTo.delete(answersTo.keys().next().value!);
    }
    if (spent.count >= ANSWERS_PER_USER_PER_MINUTE) return undefined;
    spent.count++;
    return spent;
  };
  /**
   * Gives back an answer that never reached the server (no device to answer, the key changed):
   * to the minute it was taken from. Once a call was made it counts, whatever it answered, as
   * the server counted it (a member whose full queue refuses every answer spends nothing more).
   */
  const refundAnswer = (spent: { count: number }) =>
    void (spent.count = Math.max(0, spent.count - 1));

  /**
   * A device as listed, with its identity key: a device id the server republishes with other
   * keys is another device (it may be the server's), not the one that was listed.
   */
  const tagOf = (userId: string, device: DirectoryDevice) =>
    `${addressOf(userId, device.deviceId)}\n${device.identityKey}`;

  /** The device as the server lists it now, if it is a current member's. */
  async function currentDevice(conversationId: string, to: DeviceRef) {
    const members = await transport.members(conversationId);
    if (!members.includes(to.userId)) return undefined;
    directory.forget(to.userId); // asked now: a device just added, or just changed
    return (await directory.devicesOf(to.userId)).find((d) => d.deviceId === to.deviceId);
  }

  const keyIdOf = async (conversationId: string) => {
    const key = await store.getOutboundSenderKey(conversationId);
    return key ? toBase64(key.keyId) : undefined;
  };

  /** Encrypts a sender-key payload for each device (sessions started as needed). */
  async function envelopesFor(
    userId: string,
    devices: DirectoryDevice[],
    plaintext: Uint8Array,
  ): Promise<OutgoingEnvelope[]> {
    const ready = await directory.ensureSessions(userId, devices);
    const out: OutgoingEnvelope[] = [];
    for (const device of ready) {
      const address = addressOf(userId, device.deviceId);
      const ciphertext = await queue(lanes.pair(address), () =>
        encryptToDevice(store, address, plaintext),
      );
      out.push({
        userId,
        deviceId: device.deviceId,
        contentType: E2EE_DEVICE_CONTENT_TYPE,
        ciphertext: bytesToBase64(ciphertext),
      });
    }
    return out;
  }

  /** Sends to whole users at a time (the server checks each user's set), ≤ 100 per call. */
  async function sendAll(conversationId: string, batches: OutgoingEnvelope[][]) {
    const missing: DeviceRef[] = [];
    const stale: DeviceRef[] = [];
    /** Stored for their device: a refused call stores none of its envelopes. */
    const stored: OutgoingEnvelope[] = [];
    let chunk: OutgoingEnvelope[] = [];
    const flush = async () => {
      if (chunk.length === 0) return;
      const sent = chunk;
      chunk = [];
      const result = await transport.sendToDevices(sent, true, conversationId);
      if (!result.ok) {
        missing.push(...result.missing);
        stale.push(...result.stale);
        return;
      }
      // A device whose queue was full got nothing: it is offered the key again with the next send.
      const full = new Set(result.full);
      stored.push(...sent.filter((e) => !full.has(e.deviceId)));
    };
    for (const batch of batches) {
      if (chunk.length + batch.length > MAX_ENVELOPES) await flush();
      chunk.push(...batch);
    }
    await flush();
    return { missing, stale, stored };
  }

  /** Whether a device the key went to is not listed now as it was then (members' lists). */
  async function unlistedHolder(members: string[], audience: Audience) {
    if (audience.holders.size === 0) return false;
    const listed = new Set<string>();
    for (const userId of members)
      for (const device of await directory.devicesOf(userId)) listed.add(tagOf(userId, device));
    return [...audience.holders].some((tag) => !listed.has(tag));
  }

  /**
   * Sends the current distribution to every member device that has not had this key. Answers
   * the member devices listed (mine other than this one included): who the message is for.
   */
  async function distribute(conversationId: string, members: string[], audience: Audience) {
    const me = await deps.me();
    const { distribution } = await outboundSenderKey(store, conversationId);
    const plaintext = encodeDevicePayload({ type: 'sender-key', conversationId, distribution });
    let listed: Set<string>;
    for (let attempt = 1; ; attempt++) {
      const lists = await Promise.all(
        members.map(async (userId) => ({
          userId,
          devices: (await directory.devicesOf(userId)).filter(
            (d) => !(userId === me.userId && d.deviceId === me.deviceId),
          ),
        })),
      );
      listed = new Set(lists.flatMap((l) => l.devices.map((d) => tagOf(l.userId, d))));
      const needy = lists.filter((l) =>
        l.devices.some((d) => !audience.devices.has(addressOf(l.userId, d.deviceId))),
      );
      if (needy.length === 0) break;
      await directory.prepare(needy); // bundles of many members in few calls
      const batches: OutgoingEnvelope[][] = [];
      for (const { userId, devices } of needy)
        batches.push(await envelopesFor(userId, devices, plaintext));
      const { missing, stale, stored } = await sendAll(conversationId, batches);
      const changed = new Set([...missing, ...stale].map((d) => d.userId));
      const tags = new Map(
        lists.flatMap((l) =>
          l.devices.map((d) => [addressOf(l.userId, d.deviceId), tagOf(l.userId, d)]),
        ),
      );
      for (const e of stored) {
        const address = addressOf(e.userId, e.deviceId);
        audience.devices.add(address);
        audience.holders.add(tags.get(address)!);
      }
      if (changed.size === 0) break;
      for (const userId of changed) directory.forget(userId);
      if (attempt >= DISTRIBUTION_ATTEMPTS)
        throw new Error('@mvp/sdk: the device lists keep changing; try sending again');
    }
    for (const userId of members) audience.users.add(userId);
    return listed;
  }

  async function freshKey(conversationId: string, members: string[], replace: boolean) {
    const me = await deps.me();
    const distribution = replace
      ? await rotateOutboundSenderKey(store, conversationId)
      : (await outboundSenderKey(store, conversationId)).distribution;
    // My own copy, so this device reads its own messages (echoes, history) like anyone else's.
    const self = addressOf(me.userId, me.deviceId);
    const key = await queue(lanes.inbound(conversationId, self), () =>
      receiveSenderKey(store, conversationId, self, distribution),
    );
    const audience: Audience = {
      keyId: toBase64(key.keyId),
      origin: distribution,
      users: new Set(),
      devices: new Set(),
      holders: new Set(),
    };
    audiences.set(conversationId, audience);
    return audience;
  }

  /**
   * Sends payloads pairwise to a device of a current member (from `currentDevice`): a
   * request's answer. False when nothing went (or its queue was full).
   */
  async function sendTo(
    conversationId: string,
    to: DeviceRef,
    device: DirectoryDevice,
    payloads: Uint8Array[],
  ) {
    if (payloads.length === 0) return false;
    const [ready] = await directory.ensureSessions(to.userId, [device]);
    if (!ready) return false; // its keys are refused (a verified user's changed device)
    const address = addressOf(to.userId, to.deviceId);
    let chunk: OutgoingEnvelope[] = [];
    let bytes = 0;
    let delivered = false;
    const flush = async () => {
      if (chunk.length === 0) return;
      const sent = await transport.sendToDevices(chunk, false, conversationId);
      delivered ||= !sent.ok || sent.full.length === 0;
      chunk = [];
      bytes = 0;
    };
    for (const payload of payloads) {
      const ciphertext = await queue(lanes.pair(address), () =>
        encryptToDevice(store, address, payload),
      );
      const envelope = {
        ...to,
        contentType: E2EE_DEVICE_CONTENT_TYPE,
        ciphertext: bytesToBase64(ciphertext),
      };
      if (chunk.length === MAX_ENVELOPES || bytes + envelope.ciphertext.length > RESEND_CALL_BYTES)
        await flush();
      chunk.push(envelope);
      bytes += envelope.ciphertext.length;
    }
    await flush();
    return delivered;
  }

  /** See `Outbound.answerResend`. */
  const answerResend = (
    conversationId: string,
    from: DeviceRef,
    keyId: string,
    iterations: number[],
  ): Promise<number> =>
    // One request at a time per asking device: a flood waits instead of running at once.
    queue(`resend\n${addressOf(from.userId, from.deviceId)}`, async () => {
      await sendLog.readyWithin(SEND_LOG_LOAD_WAIT_MS);
      // Nothing of it in the log (made up, or from before a restart): no call to the server.
      if (!iterations.some((i) => sendLog.find(conversationId, keyId, i))) return 0;
      const address = addressOf(from.userId, from.deviceId);
      const device = await currentDevice(conversationId, from);
      if (!device) return 0;
      const tag = tagOf(from.userId, device);
      const payloads: Uint8Array[] = [];
      const asked: string[] = [];
      for (const iteration of new Set(iterations)) {
        const sent = sendLog.find(conversationId, keyId, iteration);
        // Not for that device (as listed then, keys and all), or too big to resend.
        if (!sent?.devices.has(tag) || sent.content.length > RESEND_MAX_CONTENT_BYTES) continue;
        if (!sent.message) {
          // Not stored yet (the send's answer is still out): answered when it comes.
          if (
            sent.waiting.length < MAX_WAITING_ASKERS &&
            !sent.waiting.some((d) => addressOf(d.userId, d.deviceId) === address)
          )
            sent.waiting.push(from);
          continue;
        }
        const asking = `${address}\n${conversationId}\n${keyId}\n${iteration}`;
        if (answeredLately(asking, RESEND_ANSWER_EVERY_MS)) continue;
        asked.push(asking);
        payloads.push(
          encodeDevicePayload({
            type: 'resend',
            conversationId,
            keyId,
            iteration,
            messageId: sent.message.id,
            seq: sent.message.seq,
            editedAt: sent.message.editedAt,
            content: sent.content,
          }),
        );
      }
      if (payloads.length === 0 || !spendAnswer(from.userId)) return 0;
      if (!(await sendTo(conversationId, from, device, payloads))) return 0;
      markAnswered(asked);
      return payloads.length;
    });

  /** The send's answer: the entry names its message, and whoever asked before is answered. */
  const stored = (sent: Sent, message: SentMessage) => {
    if (!sendLog.stored(sent, message)) return; // known already (the handle and the outbox)
    const place = sendLog.placeOf(sent);
    // Asked before the send's answer came back (it was lost, and the outbox sent again).
    for (const from of sent.waiting.splice(0))
      answerResend(place.conversationId, from, place.keyId, [place.iteration]).catch(report);
  };

  const rotate = (conversationId: string) =>
    queue(lanes.outbound(conversationId), async () => {
      audiences.delete(conversationId);
      await store.deleteOutboundSenderKey(conversationId);
    });

  return {
    encrypt: (conversationId, content, use, edit) =>
      queue(lanes.outbound(conversationId), async () => {
        const me = await deps.me();
        const members = await transport.members(conversationId);
        const keyId = await keyIdOf(conversationId);
        let audience = audiences.get(conversationId);
        // Anyone who holds the key and is not a member any more, or a device that holds it and
        // is not listed any more as it was (gone, or other keys): replace the key before use.
        const stale =
          keyId !== undefined &&
          (audience?.keyId !== keyId ||
            [...audience.users].some((u) => !members.includes(u)) ||
            (await unlistedHolder(members, audience)));
        if (keyId === undefined || stale || !audience)
          audience = await freshKey(conversationId, members, keyId !== undefined);
        const listed = await distribute(conversationId, members, audience);
        audience.originDevices ??= listed;
        const self = addressOf(me.userId, me.deviceId);
        const plaintext = encodeContent(content);
        const ciphertext = await encryptGroup(
          store,
          conversationId,
          plaintext,
          edit ? editContext(conversationId, self, edit.seq) : groupContext(conversationId, self),
        );
        const { keyId: sealedWith, iteration } = parseSenderKeyMessage(ciphertext);
        const sealedKey = toBase64(sealedWith);
        const sent = sendLog.record(conversationId, sealedKey, iteration, plaintext, listed);
        return use(edit ? encodeEdit(me.deviceId, ciphertext) : ciphertext, {
          queued: (clientMessageId) => sendLog.queued(sent, clientMessageId),
          stored: (message) => stored(sent, message),
        });
      }),

    rotate,

    forgetDevice(address) {
      for (const audience of audiences.values()) audience.devices.delete(address);
    },

    forgetHolders() {
      audiences.clear();
    },

    async deviceGone(address) {
      const held = [...audiences]
        .filter(([, a]) => [...a.holders].some((tag) => tag.startsWith(`${address}\n`)))
        .map(([id]) => id);
      await Promise.all(held.map(rotate));
      return held;
    },

    async answerKeyRequest(conversationId, from, keyId, behind = false) {
      // Local checks first: a request for a key I never used costs no call to the server.
      await sendLog.readyWithin(SEND_LOG_LOAD_WAIT_MS);
      const current = (await keyIdOf(conversationId)) === keyId;
      if (!current && !sendLog.usedKey(conversationId, keyId)) return false;
      const address = addressOf(from.userId, from.deviceId);
      const asking = `key\n${address}\n${conversationId}\n${keyId}`;
      // Taken before any wait: identical requests that come together get one answer.
      if (answeredLately(asking, KEY_ANSWER_EVERY_MS)) return false;
      const spent = spendAnswer(from.userId);
      if (!spent) return false;
      markAnswered([asking]);
      let went = false;
      /** Whether a call to the server was made: from then on the answer counts, sent or not. */
      let called = false;
      try {
        // Looked up outside the lane: my own sends in this conversation do not wait for it.
        const device = await currentDevice(conversationId, from);
        if (!device) return false;
        const shared = await queue(lanes.outbound(conversationId), async () => {
          if ((await keyIdOf(conversationId)) !== keyId) return undefined;
          const audience = audiences.get(conversationId);
          // The devices listed when the key was made may read all of it; a later joiner, or a
          // device added (or given other keys) since, only from now on (the current
          // iteration), as a first distribution would have given. One behind gets now too.
          const first = audience?.originDevices?.has(tagOf(from.userId, device));
          const distribution =
            !behind && audience?.keyId === keyId && first
              ? audience.origin
              : (await outboundSenderKey(store, conversationId)).distribution;
          const payload: DevicePayload = {
            type: 'sender-key',
            conversationId,
            distribution,
            ...(behind ? { forward: true as const } : {}),
          };
          called = true;
          if (!(await sendTo(conversationId, from, device, [encodeDevicePayload(payload)])))
            return false;
          audience?.devices.add(address);
          audience?.holders.add(tagOf(from.userId, device));
          return true;
        });
        if (shared !== undefined) return (went = shared);
        // A key I replaced (someone left): it is not for them any more, but what they could
        // not read under it may still be, message by message (outside the lane).
        const gone = encodeDevicePayload({ type: 'key-gone', conversationId, keyId });
        called = true;
        went = await sendTo(conversationId, from, device, [gone]);
        return false;
      } finally {
        if (!went && !called) {
          answered.delete(asking); // nothing went: the asker's retry is answered
          refundAnswer(spent);
        }
      }
    },

    answerResend,

    forgetSent: (conversationId, seqs) => sendLog.forget(conversationId, seqs),

    sentLater(clientMessageId, conversationId, message) {
      // After the load: the outbox may finish a send from before a restart while the log's
      // store is still loading the entry it was queued as (it settles on failure too).
      void sendLog.ready.then(() => {
        const sent = sendLog.queuedAs(clientMessageId);
        if (sent && sendLog.placeOf(sent).conversationId === conversationId) stored(sent, message);
      });
    },
  };
}
