/**
 * An in-memory stand-in for the server, for the e2ee unit tests: a key directory, conversation
 * members, envelopes (with the DEVICES_CHANGED check) and messages, delivered to each device's
 * sync handler one event at a time, in order.
 */
import { encryptToDevice } from '@mvp/crypto';
import { TRPCClientError } from '@trpc/client';
import { vi } from 'vitest';
import { base64ToBytes as base64, bytesToBase64 } from '../base64';
import type { Envelope, Message, SyncEvent } from '../messaging';
import type { EditMessageInput, MvpOutbox, OutboxItem } from '../outboxTypes';
import type { MvpSync } from '../syncTypes';
import { createE2ee, type E2eeOptions, type MvpE2ee } from './e2ee';
import type { DecryptedMessage, UndecryptableMessage } from './inbound';
import {
  E2EE_DEVICE_CONTENT_TYPE,
  addressOf,
  encodeDevicePayload,
  type DevicePayload,
} from './payloads';
import type {
  ClaimedDevice,
  DeviceRef,
  E2eeTransport,
  OutgoingEnvelope,
  PublishKeysInput,
} from './transport';

type Published = Omit<ClaimedDevice, 'oneTimePrekey'> & {
  userId: string;
  oneTimePrekeys: { keyId: number; publicKey: string }[];
};

export type FakeDevice = {
  userId: string;
  deviceId: string;
  e2ee: MvpE2ee;
  transport: E2eeTransport;
  read: DecryptedMessage[];
  unreadable: UndecryptableMessage[];
  errors: unknown[];
  /** Envelopes this device sent (after the server accepted them). */
  sent: OutgoingEnvelope[];
  /** What the outbox's edits go out through (`messages.edit`); a test may answer in its place. */
  editMessage: (input: EditMessageInput) => Promise<Message>;
};

export const encode = (text: string) => new TextEncoder().encode(text);
export const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
/** The plain texts a device's app was handed, in order. */
export const texts = (d: FakeDevice) => d.read.map((m) => decode(m.body));

/**
 * Moves `Date.now` forward by `ms` from here on (the SDK's windows: key requests answered once
 * in ten seconds, and so on), without fake timers: the fake network runs on real ones. Until
 * `vi.restoreAllMocks()`.
 */
export function passTime(ms: number) {
  const base = Date.now() + ms;
  const start = performance.now();
  vi.spyOn(Date, 'now').mockImplementation(() => base + Math.floor(performance.now() - start));
}

/** Sends a text through the device's e2ee and outbox; answers the stored message. */
export async function send(d: FakeDevice, conversationId: string, text: string) {
  const handle = await d.e2ee.send(conversationId, {
    contentType: 'text/plain',
    body: encode(text),
  });
  return handle.result;
}

/** Edits my message `seq` through the device's e2ee and outbox; answers the message as edited. */
export async function edit(d: FakeDevice, conversationId: string, seq: number, text: string) {
  const handle = await d.e2ee.edit(conversationId, seq, {
    contentType: 'text/plain',
    body: encode(text),
  });
  return handle.result;
}

/**
 * Sends a device payload from one device to another over their pairwise session, stamped with
 * `conversationId`: what the SDK sends (key shares, requests, resends), or a forgery of it.
 */
export async function sendPayload(
  from: FakeDevice,
  to: FakeDevice,
  payload: DevicePayload,
  conversationId = 'g',
) {
  const address = addressOf(to.userId, to.deviceId);
  const bytes = await encryptToDevice(from.e2ee.store, address, encodeDevicePayload(payload));
  await from.transport.sendToDevices(
    [
      {
        userId: to.userId,
        deviceId: to.deviceId,
        contentType: E2EE_DEVICE_CONTENT_TYPE,
        ciphertext: bytesToBase64(bytes),
      },
    ],
    false,
    conversationId,
  );
}

export function createFakeNetwork() {
  const published = new Map<string, Published>(); // by device id
  const members = new Map<string, Set<string>>();
  const handlers = new Map<string, (event: SyncEvent) => Promise<void>>();
  const resyncs = new Map<string, () => void>();
  const chains = new Map<string, Promise<void>>();
  const seqs = new Map<string, number>();
  /** Stored messages by `conversationId:seq`, for edits. */
  const stored = new Map<string, Message>();
  let ids = 0;
  /** Return false to lose an envelope on its way (the sender is not told). */
  let filter: (envelope: OutgoingEnvelope & { sender: DeviceRef }) => boolean = () => true;
  /** Devices whose queue is full: the server stores nothing for them and says so (`full`). */
  const fullQueues = new Set<string>();
  /** The next this many claims are refused as over the rate limit (5 ms to wait). */
  let claimsRefused = 0;
  /** While set, sends and edits are stored and delivered but their answers wait (a lost answer). */
  let heldAnswers: (() => void)[] | null = null;

  const liveDevices = (userId: string) =>
    [...published.values()].filter((d) => d.userId === userId);
  const toMembers = (message: Message, type: 'message.new' | 'message.updated') => {
    for (const userId of members.get(message.conversationId) ?? [])
      for (const device of liveDevices(userId)) deliver(device.deviceId, { type, message });
  };

  /** Events held back from devices (`withhold`), in order, until `release`. */
  let withhold: ((deviceId: string, event: SyncEvent) => boolean) | null = null;
  const withheld: [string, SyncEvent][] = [];
  /** Events whose handler failed, in order: the sync engine would hand them over again. */
  const failed: [string, SyncEvent][] = [];
  const deliver = (deviceId: string, event: SyncEvent) => {
    if (withhold?.(deviceId, event)) {
      withheld.push([deviceId, event]);
      return;
    }
    const handler = handlers.get(deviceId);
    if (!handler) return;
    const next = (chains.get(deviceId) ?? Promise.resolve()).then(() => handler(event));
    chains.set(
      deviceId,
      // What the sync engine would hand over again after a backoff (see `retryFailed`).
      next.catch(() => void failed.push([deviceId, event])),
    );
  };

  /** As the server's claim: one-time prekeys only from the devices named (all when none are). */
  const claimOf = async (userId: string, deviceIds?: string[]) => {
    if (claimsRefused > 0) {
      claimsRefused--;
      throw TRPCClientError.from({
        error: {
          code: -32029,
          message: 'Too many attempts',
          data: { appCode: 'TOO_MANY_REQUESTS', retryAfterMs: 5 },
        },
      });
    }
    return liveDevices(userId).map(({ oneTimePrekeys, userId: _u, ...device }) => ({
      ...device,
      oneTimePrekey:
        !deviceIds || deviceIds.includes(device.deviceId) ? (oneTimePrekeys.shift() ?? null) : null,
    }));
  };
  /** Claim calls made, one user at a time and in batches. */
  const claimCalls = { single: 0, many: 0 };

  function transportFor(me: DeviceRef, sent: OutgoingEnvelope[]): E2eeTransport {
    const count = () => {
      const mine = published.get(me.deviceId);
      return mine
        ? {
            oneTimePrekeys: mine.oneTimePrekeys.length,
            signedPrekeyId: mine.signedPrekey.keyId,
            threshold: 10,
          }
        : null;
    };
    return {
      whoAmI: async () => me,
      keyCount: async () => count(),
      publishKeys: async (input: PublishKeysInput) => {
        published.set(me.deviceId, {
          userId: me.userId,
          deviceId: me.deviceId,
          identityKey: input.identityKey,
          signingKey: input.signingKey,
          signedPrekey: input.signedPrekey,
          oneTimePrekeys: [...(input.oneTimePrekeys ?? [])],
        });
        return count()!;
      },
      uploadPrekeys: async (input) => {
        const mine = published.get(me.deviceId)!;
        if (input.signedPrekey) mine.signedPrekey = input.signedPrekey;
        mine.oneTimePrekeys.push(...(input.oneTimePrekeys ?? []));
        return count()!;
      },
      devices: async (userId) =>
        liveDevices(userId).map(({ deviceId, identityKey, signingKey }) => ({
          deviceId,
          identityKey,
          signingKey,
        })),
      claim: async (userId, deviceIds) => {
        claimCalls.single++;
        return claimOf(userId, deviceIds);
      },
      claimMany: async (users) => {
        claimCalls.many++;
        const out = [];
        for (const { userId, deviceIds } of users) out.push(await claimOf(userId, deviceIds));
        return out;
      },
      members: async (conversationId) => {
        const set = members.get(conversationId);
        if (!set?.has(me.userId)) throw new Error('FORBIDDEN');
        return [...set];
      },
      sendToDevices: async (envelopes, allDevices, conversationId) => {
        // As the server: a sender outside the conversation is refused, recipients outside it
        // get nothing (unannounced), and what is stored carries the conversation.
        const inside = conversationId === undefined ? undefined : members.get(conversationId);
        if (inside && !inside.has(me.userId)) throw new Error('NOT_FOUND');
        if (conversationId !== undefined && !inside) throw new Error('NOT_FOUND');
        if (allDevices) {
          const users = [...new Set(envelopes.map((e) => e.userId))];
          const expected = users.flatMap((u) =>
            liveDevices(u)
              .filter((d) => d.deviceId !== me.deviceId)
              .map((d) => ({ userId: u, deviceId: d.deviceId })),
          );
          const named = new Set(envelopes.map((e) => e.deviceId));
          const missing = expected.filter((d) => !named.has(d.deviceId));
          const stale = envelopes
            .filter((e) => !published.has(e.deviceId))
            .map(({ userId, deviceId }) => ({ userId, deviceId }));
          if (missing.length > 0 || stale.length > 0) return { ok: false, missing, stale };
        }
        const named = [...new Set(envelopes.map((e) => e.deviceId))];
        const full = named.filter((d) => fullQueues.has(d));
        // As the server: refused only when every device named is full.
        if (full.length > 0 && full.length === named.length) throw new Error('TOO_MANY_REQUESTS');
        for (const e of envelopes) {
          if (fullQueues.has(e.deviceId)) continue;
          sent.push(e);
          if (!filter({ ...e, sender: me })) continue;
          if (inside && !inside.has(e.userId)) continue;
          const envelope: Envelope = {
            id: String(++ids),
            senderId: me.userId,
            senderDeviceId: me.deviceId,
            contentType: e.contentType,
            ciphertext: base64(e.ciphertext),
            sentAt: new Date(0).toISOString(),
            ...(conversationId !== undefined ? { conversationId } : {}),
          };
          deliver(e.deviceId, { type: 'envelope', envelope });
        }
        return { ok: true, full };
      },
      verify: async (input) => ({
        ...input,
        verifiedAt: new Date(0).toISOString(),
        verified: true,
      }),
    };
  }

  /**
   * `onChange` listeners of each device's outbox: those of its newest instance (a restarted
   * device's outbox is the one that finishes what the last one queued).
   */
  const outboxListeners = new Map<string, Set<(item: OutboxItem) => void>>();

  /** Edits applied, by conversation, seq and client edit id. */
  const applied = new Set<string>();
  /**
   * `messages.edit` as the server does it: new bytes and editedAt, the sending device stays; an
   * edit id applied before answers the message as it is.
   */
  async function editAs(me: DeviceRef, input: EditMessageInput): Promise<Message> {
    const key = `${input.conversationId}:${input.seq}`;
    const original = stored.get(key);
    if (original?.senderId !== me.userId) throw new Error('FORBIDDEN');
    const id = `${key}:${input.clientEditId}`;
    if (applied.has(id)) return original;
    applied.add(id);
    const edited: Message = {
      ...original,
      contentType: input.contentType,
      ciphertext: base64(input.ciphertext),
      editedAt: new Date(++ids).toISOString(),
    };
    stored.set(key, edited);
    toMembers(edited, 'message.updated');
    return edited;
  }

  /** A device's outbox: sends are stored at once, edits go through `device().editMessage`. */
  function outboxFor(me: DeviceRef, device: () => FakeDevice): MvpOutbox {
    const listeners = new Set<(item: OutboxItem) => void>();
    outboxListeners.set(me.deviceId, listeners);
    const sentAs = (message: Message, entryId = message.clientMessageId, editSeq?: number) => {
      const item: OutboxItem = {
        clientMessageId: entryId,
        conversationId: message.conversationId,
        contentType: message.contentType,
        ciphertext: message.ciphertext!,
        ...(editSeq === undefined ? {} : { editSeq }),
        state: 'sent',
        attempts: 1,
        message,
      };
      for (const listener of outboxListeners.get(me.deviceId) ?? []) listener(item);
      return message;
    };
    return {
      onChange(listener) {
        listeners.add(listener);
        return { unsubscribe: () => void listeners.delete(listener) };
      },
      send(conversationId, outgoing) {
        const seq = (seqs.get(conversationId) ?? 0) + 1;
        seqs.set(conversationId, seq);
        const message = {
          id: `m${++ids}`,
          conversationId,
          seq,
          senderId: me.userId,
          senderDeviceId: me.deviceId,
          clientMessageId: `c${ids}`,
          contentType: outgoing.contentType,
          ciphertext: outgoing.ciphertext,
          replyToSeq: null,
          forwarded: false,
          createdAt: new Date(0).toISOString(),
          editedAt: null,
          deletedAt: null,
          expiresAt: null,
          reactions: [],
        } as Message;
        stored.set(`${conversationId}:${seq}`, message);
        toMembers(message, 'message.new');
        const held = heldAnswers;
        const result = held
          ? new Promise<Message>((resolve) => held.push(() => resolve(sentAs(message))))
          : Promise.resolve(sentAs(message));
        return { clientMessageId: message.clientMessageId, result };
      },
      edit(conversationId, seq, edit) {
        const entryId = `edit-${++ids}`;
        const held = heldAnswers;
        const result = device()
          .editMessage({
            conversationId,
            seq,
            contentType: edit.contentType,
            ciphertext: bytesToBase64(edit.ciphertext),
            clientEditId: entryId,
          })
          .then((edited) =>
            held
              ? new Promise<Message>((resolve) =>
                  held.push(() => resolve(sentAs(edited, entryId, seq))),
                )
              : sentAs(edited, entryId, seq),
          );
        return { clientMessageId: entryId, result };
      },
    } as MvpOutbox;
  }

  return {
    async device(
      userId: string,
      deviceId = `${userId}-phone`,
      time?: Parameters<typeof createE2ee>[0]['time'],
      /** The same `store` (and `sendLog`) as an earlier device: that device after a restart. */
      options: E2eeOptions = {},
    ): Promise<FakeDevice> {
      const me = { userId, deviceId };
      const sent: OutgoingEnvelope[] = [];
      const transport = transportFor(me, sent);
      const sync = {
        onEvent: (handler: (event: SyncEvent) => Promise<void>) => {
          handlers.set(deviceId, handler);
          return { unsubscribe: () => handlers.delete(deviceId) };
        },
        onResync: (handler: () => void) => {
          resyncs.set(deviceId, handler);
          return { unsubscribe: () => resyncs.delete(deviceId) };
        },
        start: async () => undefined,
      } as unknown as MvpSync;
      const outbox = outboxFor(me, () => device);
      const e2ee = createE2ee({ transport, sync, outbox, options, time });
      const device: FakeDevice = {
        ...me,
        e2ee,
        transport,
        read: [],
        unreadable: [],
        errors: [],
        sent,
        editMessage: (input) => editAs(me, input),
      };
      e2ee.onMessage((m) => void device.read.push(m));
      e2ee.onUndecryptable((u) => void device.unreadable.push(u));
      e2ee.onError((e) => void device.errors.push(e));
      await e2ee.setup();
      return device;
    },
    /** Sets who is in a conversation now (no events: the SDK must notice by itself). */
    members(conversationId: string, userIds: string[]) {
      members.set(conversationId, new Set(userIds));
    },
    /** The device's stream could not resume (the events it missed are not delivered). */
    resync(deviceId: string) {
      resyncs.get(deviceId)?.();
    },
    /** Sends an event to every device of a user. */
    event(userId: string, event: SyncEvent) {
      for (const device of liveDevices(userId)) deliver(device.deviceId, event);
    },
    /** `device.keys` to every device of `to`, as the server tells a device added, changed or removed. */
    keysChanged(
      to: string,
      userId: string,
      deviceId: string,
      change: 'added' | 'changed' | 'removed',
    ) {
      const identityKey = published.get(deviceId)?.identityKey ?? '';
      for (const device of liveDevices(to))
        deliver(device.deviceId, {
          type: 'device.keys',
          userId,
          deviceId,
          identityKey,
          change,
          verificationLost: false,
        });
    },
    lose(rule: typeof filter) {
      filter = rule;
    },
    /** Holds back the events `rule` picks (the server delays them) until `release`. */
    withhold(rule: (deviceId: string, event: SyncEvent) => boolean) {
      withhold = rule;
    },
    /** How many events' handlers failed and wait to be handed over again. */
    get failedEvents() {
      return failed.length;
    },
    /** Hands over again what failed, in order, as the sync engine does after its backoff. */
    retryFailed() {
      for (const [deviceId, event] of failed.splice(0)) deliver(deviceId, event);
    },
    /** Stops holding back, and delivers what was held, in order. */
    release() {
      withhold = null;
      for (const [deviceId, event] of withheld.splice(0)) deliver(deviceId, event);
    },
    /** Holds the answers to sends and edits from now (true), or lets the held ones through (false). */
    holdAnswers(hold: boolean) {
      const held = heldAnswers;
      heldAnswers = hold ? (held ?? []) : null;
      if (!hold) for (const release of held ?? []) release();
    },
    /** The next `n` prekey claims meet the rate limit. */
    refuseClaims(n: number) {
      claimsRefused = n;
    },
    /** The device's queue on the server is full (true) or has room again (false). */
    fill(deviceId: string, full: boolean) {
      if (full) fullQueues.add(deviceId);
      else fullQueues.delete(deviceId);
    },
    /** Resolves once no device has an event queued (repeating until it stays that way). */
    async settled() {
      for (;;) {
        const pending = [...chains.values()];
        await Promise.all(pending);
        // Background work (key requests, answers) may have queued more: give it a turn.
        await new Promise((resolve) => setTimeout(resolve, 0));
        if (
          [...chains.values()].every((c, i) => c === pending[i]) &&
          chains.size === pending.length
        )
          return;
      }
    },
    claimCalls,
    /** The message as the server holds it now (after edits). */
    message: (conversationId: string, seq: number) => stored.get(`${conversationId}:${seq}`),
    published,
  };
}
