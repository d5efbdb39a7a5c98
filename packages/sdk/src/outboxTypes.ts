import type { BackoffOptions } from './backoff';
import type { MvpErrorData } from './errors';
import type { Message } from './messaging';
import type { Awaitable } from './types';

// What `client.outbox` is to an app, what it keeps in an app's store, and what the client gives
// it (outbox.ts).

export type OutgoingMessage = {
  /** A label the apps agree on, e.g. `text/plain`; the server never parses it. */
  contentType: string;
  ciphertext: Uint8Array;
  replyToSeq?: number;
  forwarded?: boolean;
};

/** New bytes for one of my messages (`MvpOutbox.edit`). */
export type OutgoingEdit = {
  contentType: string;
  ciphertext: Uint8Array;
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
  /**
   * Set for an edit: the seq of my message it replaces. An edit's `clientMessageId` starts with
   * `edit-` and goes to the server as its `clientEditId`; an entry with that prefix and no
   * `editSeq` (a store that dropped the field) is never sent, rather than sent as a new message.
   */
  editSeq?: number;
  /** When it was queued (ms) and a tie-breaker: the order sends go out in after a restart. */
  queuedAt: number;
  order: number;
  /** Only `queued` and `failed` are ever stored; a send cut short by a restart is `queued`. */
  state: 'queued' | 'failed';
  error?: OutboxError;
  /**
   * The user id of the account that queued it: only that account ever sends it, lists it or
   * hears of it. Entries kept by an SDK before this field have none; see `ownedBy`.
   */
  userId?: string;
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
  /** Set for an edit: the seq of the message it replaces. */
  editSeq?: number;
  state: OutboxState;
  /** Attempts made in this process (a restart starts again at 0). */
  attempts: number;
  /** The last failure: the final one when `failed`, the one being retried when `queued`. */
  error?: OutboxError;
  /** The stored message (for an edit, as edited), once `sent`. */
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
  /**
   * Queues an edit of my message `seq`: in order with the conversation's sends (an edit queued
   * after a send goes after it), retried with the same bytes, which the server applies once.
   */
  edit(conversationId: string, seq: number, edit: OutgoingEdit): OutboxHandle;
  /** Everything not yet sent (edits have `editSeq`): queued, sending, or failed (until `retry` or `discard`). */
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
  /**
   * Forgets a failed or queued send; its handle's `result` rejects (one already on its way may
   * still arrive).
   */
  discard(clientMessageId: string): Promise<void>;
  /**
   * Ends every backoff wait now, e.g. when the app learns the network is back. A wait the server
   * asked for (`retryAfterMs` of `TOO_MANY_REQUESTS`) goes on: the network does not lift it.
   */
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

export type EditMessageInput = {
  conversationId: string;
  seq: number;
  contentType: string;
  ciphertext: string;
  /** The entry's id: the server applies an edit once per id (a retry answers the message). */
  clientEditId: string;
};

export type OutboxDeps = {
  /**
   * `messages.send`, answering the stored message with its ciphertext as bytes. `asUser` is the
   * entry's owner: the send must not go out under any other account's token.
   */
  send(input: SendMessageInput, asUser: string): Promise<Message>;
  /** `messages.edit`, likewise. */
  edit(input: EditMessageInput, asUser: string): Promise<Message>;
  /**
   * The signed-in account's user id, null when signed out. Asked when a send is queued (its
   * owner) and before every attempt; a rejection counts as a failed attempt (retried).
   */
  currentUser(): Awaitable<string | null>;
  store?: OutboxStore;
  backoff?: BackoffOptions;
  random?: () => number;
  now?: () => number;
};

/** The outbox as the client drives it: also told when the signed-in account may have changed. */
export type OutboxControl = MvpOutbox & {
  /** After a sign-in or sign-out: the last account's sends stop, the current one's go out. */
  accountChanged(): void;
};
