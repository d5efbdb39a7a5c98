import { base64ToBytes, bytesToBase64, randomId } from './base64';
import { DEFAULT_BACKOFF, reconnectDelayMs, type BackoffOptions } from './backoff';
import { isMvpError, type MvpErrorData } from './errors';
import type { Message } from './messaging';

type Awaitable<T> = T | Promise<T>;

export type OutgoingMessage = {
  /** A label the apps agree on, e.g. `text/plain`; the server never parses it. */
  contentType: string;
  ciphertext: Uint8Array;
  replyToSeq?: number;
  forwarded?: boolean;
};

export type OutboxState = 'queued' | 'sending' | 'sent' | 'failed';

/** One send as the outbox keeps it: JSON-friendly, so any key-value store can hold it. */
export type StoredOutboxEntry = {
  clientMessageId: string;
  conversationId: string;
  contentType: string;
  /** Base64, so the entry survives `JSON.stringify`. */
  ciphertext: string;
  replyToSeq?: number;
  forwarded?: boolean;
  /** When it was queued (ms) and a tie-breaker: the order sends go out in after a restart. */
  queuedAt: number;
  order: number;
  /** Only `queued` and `failed` are ever stored; a send cut short by a restart is `queued`. */
  state: 'queued' | 'failed';
  error?: OutboxError;
};

/** Why a send failed for good (or, while it waits for a retry, why the last attempt failed). */
export type OutboxError = { code: MvpErrorData['appCode'] | 'NETWORK'; message: string };

export type OutboxItem = {
  clientMessageId: string;
  conversationId: string;
  contentType: string;
  ciphertext: Uint8Array;
  replyToSeq?: number;
  forwarded?: boolean;
  state: OutboxState;
  /** Attempts made in this process (a restart starts again at 0). */
  attempts: number;
  /** The last failure: the final one when `failed`, the one being retried when `queued`. */
  error?: OutboxError;
  /** The stored message, once `sent`. */
  message?: Message;
};

/**
 * Where pending sends live across restarts. `save` inserts or replaces by `clientMessageId`.
 * Sync or async both fit; see the README for a localStorage / AsyncStorage adapter.
 */
export type OutboxStore = {
  load(): Awaitable<StoredOutboxEntry[]>;
  save(entry: StoredOutboxEntry): Awaitable<void>;
  remove(clientMessageId: string): Awaitable<void>;
};

export type OutboxHandle = {
  clientMessageId: string;
  /**
   * The stored message once the server has it; rejects with the server's error when the send
   * fails for good. Nothing is reported as unhandled if the app only watches `onChange`.
   */
  result: Promise<Message>;
};

export type MvpOutbox = {
  /**
   * Queues a message with a fresh client message id. Sends go out in order per conversation and
   * are retried with the same id (the server stores a message once per id).
   */
  send(conversationId: string, message: OutgoingMessage): OutboxHandle;
  /** Everything not yet sent: queued, sending, or failed (until `retry` or `discard`). */
  pending(conversationId?: string): OutboxItem[];
  /** Told on every state change of any send. */
  onChange(listener: (item: OutboxItem) => void): { unsubscribe(): void };
  /**
   * Loads what the store kept from an earlier run and sends it. `send` does this first by itself;
   * call it at start-up (once signed in) to send leftovers without sending anything new.
   */
  restore(): Promise<void>;
  /** Queues a failed send again (same client message id). */
  retry(clientMessageId: string): void;
  /** Forgets a failed or queued send (one already on its way may still arrive). */
  discard(clientMessageId: string): Promise<void>;
  /** Ends every backoff wait now, e.g. when the app learns the network is back. */
  retryNow(): void;
  /** Stops sending (pending sends stay in the store); `send`, `restore`, `retryNow` resume. */
  pause(): void;
};

export type SendMessageInput = {
  conversationId: string;
  clientMessageId: string;
  contentType: string;
  ciphertext: string;
  replyToSeq?: number;
  forwarded?: boolean;
};

export type OutboxDeps = {
  /** `messages.send`, answering the stored message with its ciphertext as bytes. */
  send(input: SendMessageInput): Promise<Message>;
  store?: OutboxStore;
  backoff?: BackoffOptions;
  random?: () => number;
  now?: () => number;
};

/** Codes that will not change by sending the same thing again. */
const PERMANENT = new Set<string>([
  'BAD_REQUEST',
  'FORBIDDEN',
  'NOT_FOUND',
  'PAYLOAD_TOO_LARGE',
  'CONFLICT',
  'UNSUPPORTED_MEDIA_TYPE',
]);

type Verdict = { retry: false } | { retry: true; afterMs?: number };

/**
 * Permanent answers fail the message; everything else is worth another try with the same id:
 * network failures (no answer: the request may or may not have arrived, which is exactly why
 * the id is reused), 5xx and SERVICE_UNAVAILABLE, TOO_MANY_REQUESTS after the server's wait, and
 * UNAUTHORIZED (signed out or a token hiccup: the message waits for a session rather than vanish).
 */
export function classifySendError(error: unknown): Verdict {
  if (!isMvpError(error)) return { retry: true };
  const data = error.data as Partial<MvpErrorData>;
  if (data.appCode === 'TOO_MANY_REQUESTS')
    return { retry: true, afterMs: data.retryAfterMs ?? undefined };
  if (data.appCode && PERMANENT.has(data.appCode)) return { retry: false };
  if (data.appCode === 'UNAUTHORIZED' || (data.httpStatus ?? 500) >= 500) return { retry: true };
  return { retry: false };
}

function errorOf(error: unknown): OutboxError {
  const message = error instanceof Error ? error.message : String(error);
  if (!isMvpError(error)) return { code: 'NETWORK', message };
  const code = (error.data as Partial<MvpErrorData>).appCode ?? 'INTERNAL_SERVER_ERROR';
  return { code, message };
}

type Entry = {
  stored: StoredOutboxEntry;
  item: OutboxItem;
  /** Settles the handle; absent for sends restored from the store. */
  settle?: { resolve(m: Message): void; reject(e: unknown): void };
  /** The store write of the new entry: nothing is sent before it is kept. */
  kept: Promise<void>;
};

const byQueueOrder = (a: Entry, b: Entry) =>
  a.stored.queuedAt - b.stored.queuedAt || a.stored.order - b.stored.order;

export function createOutbox(deps: OutboxDeps): MvpOutbox {
  const store = deps.store ?? createMemoryOutboxStore();
  const backoff = deps.backoff ?? DEFAULT_BACKOFF;
  const now = deps.now ?? Date.now;
  const entries = new Map<string, Entry>();
  const listeners = new Set<(item: OutboxItem) => void>();
  /** Conversations with a running sender loop: at most one each, which keeps their order. */
  const running = new Set<string>();
  /** Backoff waits in progress; `retryNow` and `pause` end them. */
  const waits = new Set<() => void>();
  let order = 0;
  let paused = false;
  let restoring: Promise<void> | undefined;

  const snapshotOf = (entry: Entry): OutboxItem => ({ ...entry.item });
  const emit = (entry: Entry) => {
    const item = snapshotOf(entry);
    for (const listener of listeners) listener(item);
  };
  const setState = (entry: Entry, state: OutboxState, error?: OutboxError) => {
    entry.item.state = state;
    entry.item.error = error;
    emit(entry);
  };
  // A store that fails must not stop messages from going out: the entry lives on in memory,
  // and the worst case is a send that does not survive a restart.
  const persist = async (write: () => Awaitable<void>) => {
    try {
      await write();
    } catch {
      /* see above */
    }
  };

  const wait = (ms: number) =>
    new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        waits.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      waits.add(done);
    });

  const nextQueued = (conversationId: string) =>
    [...entries.values()]
      .filter((e) => e.stored.conversationId === conversationId && e.item.state === 'queued')
      .sort(byQueueOrder)[0];

  /** Sends one conversation's queue head first, one message at a time, until it is empty. */
  const drain = async (conversationId: string) => {
    if (running.has(conversationId)) return;
    running.add(conversationId);
    try {
      await restore();
      for (let entry = nextQueued(conversationId); entry && !paused;) {
        await entry.kept;
        if (!entries.has(entry.stored.clientMessageId) || entry.item.state !== 'queued') {
          entry = nextQueued(conversationId); // discarded while its write was pending
          continue;
        }
        entry.item.attempts += 1;
        setState(entry, 'sending');
        const {
          queuedAt: _at,
          order: _order,
          state: _state,
          error: _error,
          ...input
        } = entry.stored;
        try {
          const message = await deps.send(input);
          entries.delete(input.clientMessageId);
          entry.item.message = message;
          setState(entry, 'sent');
          await persist(() => store.remove(input.clientMessageId));
          entry.settle?.resolve(message);
        } catch (error) {
          const verdict = classifySendError(error);
          if (!entries.has(input.clientMessageId)) {
            entry.settle?.reject(error); // discarded while on its way: nothing to keep or retry
          } else if (!verdict.retry) {
            entry.stored = { ...entry.stored, state: 'failed', error: errorOf(error) };
            setState(entry, 'failed', entry.stored.error);
            await persist(() => store.save(entry!.stored));
            entry.settle?.reject(error);
          } else {
            // Back in the queue at the head: the next attempt reuses the client message id.
            setState(entry, 'queued', errorOf(error));
            const delay =
              verdict.afterMs ?? reconnectDelayMs(entry.item.attempts - 1, backoff, deps.random);
            if (!paused) await wait(delay);
          }
        }
        entry = nextQueued(conversationId);
      }
    } finally {
      running.delete(conversationId);
    }
  };

  const kick = () => {
    const conversations = new Set(
      [...entries.values()]
        .filter((e) => e.item.state === 'queued')
        .map((e) => e.stored.conversationId),
    );
    for (const id of conversations) void drain(id);
  };

  const add = (stored: StoredOutboxEntry, kept: Promise<void>, settle?: Entry['settle']) => {
    const entry: Entry = {
      stored,
      kept,
      settle,
      item: {
        clientMessageId: stored.clientMessageId,
        conversationId: stored.conversationId,
        contentType: stored.contentType,
        ciphertext: base64ToBytes(stored.ciphertext),
        ...(stored.replyToSeq === undefined ? {} : { replyToSeq: stored.replyToSeq }),
        ...(stored.forwarded === undefined ? {} : { forwarded: stored.forwarded }),
        state: stored.state,
        attempts: 0,
        ...(stored.error ? { error: stored.error } : {}),
      },
    };
    entries.set(stored.clientMessageId, entry);
    emit(entry);
    return entry;
  };

  function restore(): Promise<void> {
    paused = false;
    restoring ??= (async () => {
      let kept: StoredOutboxEntry[] = [];
      try {
        kept = await store.load();
      } catch {
        // An unreadable store starts empty, as a memory store would; new sends still go out.
        kept = [];
      }
      for (const stored of kept) {
        if (entries.has(stored.clientMessageId)) continue;
        // A send cut short by the restart may or may not have arrived: sending it again with the
        // same id is safe either way.
        add(
          { ...stored, state: stored.state === 'failed' ? 'failed' : 'queued' },
          Promise.resolve(),
        );
      }
    })();
    return restoring.then(kick);
  }

  return {
    send(conversationId, message) {
      paused = false;
      const stored: StoredOutboxEntry = {
        clientMessageId: randomId(),
        conversationId,
        contentType: message.contentType,
        ciphertext: bytesToBase64(message.ciphertext),
        ...(message.replyToSeq === undefined ? {} : { replyToSeq: message.replyToSeq }),
        ...(message.forwarded === undefined ? {} : { forwarded: message.forwarded }),
        queuedAt: now(),
        order: order++,
        state: 'queued',
      };
      let settle!: Entry['settle'];
      const result = new Promise<Message>((resolve, reject) => (settle = { resolve, reject }));
      result.catch(() => undefined);
      add(
        stored,
        persist(() => store.save(stored)),
        settle,
      );
      void restore();
      return { clientMessageId: stored.clientMessageId, result };
    },
    pending: (conversationId) =>
      [...entries.values()]
        .filter((e) => conversationId === undefined || e.stored.conversationId === conversationId)
        .sort(byQueueOrder)
        .map(snapshotOf),
    onChange(listener) {
      listeners.add(listener);
      return { unsubscribe: () => void listeners.delete(listener) };
    },
    restore,
    retry(clientMessageId) {
      const entry = entries.get(clientMessageId);
      if (entry?.item.state !== 'failed') return;
      const { error: _error, ...rest } = entry.stored;
      entry.stored = { ...rest, state: 'queued' };
      entry.item.attempts = 0;
      entry.kept = persist(() => store.save(entry.stored));
      setState(entry, 'queued');
      paused = false;
      void drain(entry.stored.conversationId);
    },
    async discard(clientMessageId) {
      const entry = entries.get(clientMessageId);
      if (!entry) return;
      entries.delete(clientMessageId);
      await persist(() => store.remove(clientMessageId));
    },
    retryNow() {
      paused = false;
      for (const done of [...waits]) done();
      kick();
    },
    pause() {
      paused = true;
      for (const done of [...waits]) done();
    },
  };
}

/** The default store: pending sends live as long as the process. */
export function createMemoryOutboxStore(): OutboxStore {
  const kept = new Map<string, StoredOutboxEntry>();
  return {
    load: () => [...kept.values()].map((e) => ({ ...e })),
    save: (entry) => void kept.set(entry.clientMessageId, { ...entry }),
    remove: (clientMessageId) => void kept.delete(clientMessageId),
  };
}
