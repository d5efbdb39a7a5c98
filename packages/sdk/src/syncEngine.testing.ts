/**
 * The sync engine's tests' server and data: a fake transport the test drives, and wire events
 * carrying only what the engine reads.
 */
import { afterEach, beforeEach, expect, vi } from 'vitest';
import { bytesToBase64 } from './base64';
import type { RawSyncEvent, Snapshot, SyncEvent } from './messaging';
import type { createSyncEngine } from './syncEngine';
import {
  createMemoryCursorStore,
  readCursor,
  writeCursor,
  type CursorStore,
  type SyncTransport,
} from './syncTransport';

export const ME = 'me';

/** A store holding `id` as my cursor, as the engine would have saved it. */
export const myCursor = (id: string) => createMemoryCursorStore(writeCursor({ userId: ME, id }));
/** The event id a store holds, whoever's it is. */
export const idIn = async (store: CursorStore) => readCursor(await store.get())?.id ?? null;

/**
 * Test data typed by what it stands for. The server's event and message types grow fields as
 * the API grows; fixtures carry only what the engine reads, so they are not checked field by field.
 */
export const wire = <T>(value: object): T => value as T;
export type Handlers = Parameters<SyncTransport['subscribe']>[1];

/** A message event as the wire carries it (only the fields the engine reads matter here). */
export function messageEvent(
  conversationId: string,
  seq: number,
  senderId = 'other',
): RawSyncEvent {
  return wire({
    type: 'message.new',
    message: {
      id: `${conversationId}-${seq}`,
      conversationId,
      seq,
      senderId,
      senderDeviceId: 'd1',
      clientMessageId: `client-${seq}`,
      contentType: 'text/plain',
      ciphertext: bytesToBase64(new TextEncoder().encode(`#${seq}`)),
      replyToSeq: null,
      forwarded: false,
      createdAt: new Date(0).toISOString(),
      editedAt: null,
      deletedAt: null,
    },
  });
}

export function snapshotOf(
  cursor: string,
  conversations: { id: string; lastSeq: number; unread: number; readSeq: number }[] = [],
): Snapshot {
  return {
    cursor,
    conversations: conversations.map((c) => ({
      conversation: {
        id: c.id,
        lastSeq: c.lastSeq,
      } as Snapshot['conversations'][number]['conversation'],
      lastMessage: null,
      unread: c.unread,
      unreadSeqs: null,
      readSeq: c.readSeq,
      deliveredSeq: c.readSeq,
    })),
    contactRequests: { incoming: [], outgoing: [] },
    pendingEnvelopes: [],
    ringingCalls: [],
  };
}

/**
 * The server side of the engine, driven by the test: it records each subscription (and the
 * cursor it started from) and lets the test push events into the current one.
 */
export function fakeTransport(snapshots: Snapshot[], user = ME) {
  const subscriptions: { from: string | null; handlers: Handlers; closed: boolean }[] = [];
  const acks: string[] = [];
  const ackOwners: string[] = [];
  /** Delivered marks sent, as `<conversation>:<seq>@<owner>`. */
  const marks: string[] = [];
  let markFailure: (() => Error) | undefined;
  let markCalls = 0;
  let snapshotCalls = 0;
  /** Envelopes past a snapshot's first page (`moreEnvelopes`), handed out `pageSize` at a time. */
  const later = { envelopes: [] as Snapshot['pendingEnvelopes'], pageSize: 2, fail: false };
  const pageReads: string[] = [];
  const transport: SyncTransport = {
    whoAmI: () => Promise.resolve(user),
    snapshot: () => Promise.resolve(snapshots[Math.min(snapshotCalls++, snapshots.length - 1)]!),
    pendingEnvelopes(after, upTo) {
      pageReads.push(`${after}..${upTo}`);
      if (later.fail) return Promise.reject(new TypeError('fetch failed'));
      const rest = later.envelopes.filter(
        (e) => Number(e.id) > Number(after) && Number(e.id) <= Number(upTo),
      );
      const envelopes = rest.slice(0, later.pageSize);
      return Promise.resolve({ envelopes, more: rest.length > envelopes.length });
    },
    subscribe(from, handlers) {
      const sub = { from, handlers, closed: false };
      subscriptions.push(sub);
      queueMicrotask(() => handlers.onStarted());
      return { unsubscribe: () => void (sub.closed = true) };
    },
    ack: (upTo, owner) => {
      acks.push(upTo);
      ackOwners.push(owner);
      return Promise.resolve();
    },
    markDelivered: (batch, owner) => {
      markCalls++;
      for (const { conversationId, seq } of batch) marks.push(`${conversationId}:${seq}@${owner}`);
      const failure = markFailure?.();
      return failure === undefined ? Promise.resolve() : Promise.reject(failure);
    },
  };
  const current = () => subscriptions.at(-1)!;
  return {
    transport,
    subscriptions,
    acks,
    ackOwners,
    marks,
    markCalls: () => markCalls,
    /** What the next delivered marks fail with (undefined: they succeed). */
    failMarks: (failure: (() => Error) | undefined) => void (markFailure = failure),
    snapshotCalls: () => snapshotCalls,
    later,
    pageReads,
    push: (id: string, data: RawSyncEvent) => current().handlers.onData({ id, data }),
    /** Resolves once `n` subscriptions were opened. */
    async subscribed(n: number) {
      await vi.waitFor(() => expect(subscriptions.length).toBeGreaterThanOrEqual(n));
      return subscriptions[n - 1]!;
    },
  };
}

/** A promise the test settles. */
export function deferred<T = void>() {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

/** An envelope waiting on the server for this device, as a snapshot lists it. */
export const waiting = (id: string, ciphertext = 'AAEC') => ({
  id,
  envelope: {
    id: `env-${id}`,
    senderId: 'u2',
    senderDeviceId: 'd2',
    contentType: 'mvp/key',
    ciphertext,
    sentAt: new Date(0).toISOString(),
  },
});

export const envelopeEvent = wire<RawSyncEvent>({
  type: 'envelope',
  envelope: {
    id: 'e1',
    senderId: 'u2',
    senderDeviceId: 'd2',
    contentType: 'mvp/key',
    ciphertext: 'AAEC',
    sentAt: new Date(0).toISOString(),
  },
});

/** Collects what the app is handed, and lets a test hold a handler open. */
export function recorder() {
  const seen: { id: string; type: string; seq?: number; ephemeral: boolean }[] = [];
  return {
    seen,
    handler: (event: SyncEvent, info: { id: string; ephemeral: boolean }) => {
      const seq = 'message' in event ? event.message.seq : undefined;
      seen.push({ id: info.id, type: event.type, seq, ephemeral: info.ephemeral });
    },
  };
}

/**
 * Checks after each test of the calling file that its engines left nothing rejected with nobody
 * to hear it, and puts the real timers back.
 */
export function expectNoUnhandledRejections() {
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => void unhandled.push(reason);

  beforeEach(() => {
    unhandled.length = 0;
    process.on('unhandledRejection', onUnhandled);
  });

  afterEach(async () => {
    vi.useRealTimers();
    // Node tells of a rejection left unhandled once the microtasks of its turn have run.
    await new Promise((resolve) => setImmediate(resolve));
    process.off('unhandledRejection', onUnhandled);
    expect(unhandled).toEqual([]);
  });
}

/** The messages of what `onError` was told. */
export function errorsOf(engine: ReturnType<typeof createSyncEngine>) {
  const errors: unknown[] = [];
  engine.onError((error) => errors.push(error));
  return { errors, messages: () => errors.map((e) => (e as Error).message) };
}
