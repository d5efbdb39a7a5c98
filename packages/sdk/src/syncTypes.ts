import type { BackoffOptions } from './backoff';
import type { Snapshot, SyncEvent } from './messaging';
import type { CursorStore, SyncTransport } from './syncTransport';
import type { Awaitable } from './types';

// What `client.sync` is to an app, and what the client gives the engine (syncEngine.ts).

/** Ephemeral events ride the stream with the current cursor as id and never move it. */
export const EPHEMERAL_EVENT_TYPES: ReadonlySet<string> = new Set([
  'presence',
  'typing',
  'call.signal',
]);

export type SyncState = 'idle' | 'starting' | 'live' | 'stopped';
export type EventInfo = {
  /** The stream id (for ephemeral events: the cursor they arrived at). */
  id: string;
  /** Presence and typing: delivered live, never replayed, never saved as the cursor. */
  ephemeral: boolean;
};
export type Subscription = {
  /** Stops listening; safe to call twice. */
  unsubscribe(): void;
};

/** `client.sync`: the device's one event stream, delivered in order and once. */
export type MvpSync = {
  /**
   * Starts the stream (loading the snapshot first on a cold start); resolves once the server has
   * started it. Calling it again while it starts answers the same promise; while it reconnects,
   * one that resolves once it is live again.
   */
  start(): Promise<void>;
  /**
   * Ends the subscription; resolves once what is being handed over (an event, or a cold start's
   * snapshot or waiting envelope), if anything, is done and an event's cursor saved, or a backoff
   * after a handler's failure is cut short. It does not reject:
   * handlers' failures go to `onError`. The cursor stays in its store for the next `start()`.
   */
  stop(): Promise<void>;
  readonly state: SyncState;
  /**
   * Every event, in stream order, each durable one once. The next event waits for this handler
   * (and the cursor is saved only after it), so a handler that stores what it gets never skips
   * or repeats. A handler that throws gets the same event again after a backoff: catch what you
   * mean to skip. Registering the first handler starts the stream.
   */
  onEvent(
    handler: (event: SyncEvent, info: EventInfo) => Awaitable<void>,
    options?: { onStarted?: () => void },
  ): Subscription;
  /** A cold start's state (and a resync's), before any event after it. */
  onSnapshot(handler: (snapshot: Snapshot) => Awaitable<void>): Subscription;
  /**
   * The server could not resume (or sent an event this SDK cannot read): drop what you derived
   * from the stream; a snapshot follows. Like `onEvent`'s, a handler that throws is called again
   * after a backoff, and the snapshot waits for it: make it safe to repeat.
   */
  onResync(handler: () => Awaitable<void>): Subscription;
  /**
   * Failures: of the stream (retried; `UNAUTHORIZED` stops it), a handler, the cursor store, or
   * of stopping the stream and its socket when someone signs in (the sign-in still answers).
   */
  onError(handler: (error: unknown) => void): Subscription;
  /** Messages from others after my read position, kept current from the stream. */
  unread(conversationId: string): number;
  unreadTotal(): number;
  onUnreadChange(handler: (conversationId: string, unread: number) => void): Subscription;
};

/** The engine as the client drives it: also told of failures of its own around the stream. */
export type SyncControl = MvpSync & {
  /** Hands `error` to the `onError` listeners. */
  report: (error: unknown) => void;
  /**
   * Sees each event once the app's handlers have it, without starting the stream (SDK parts
   * that follow it quietly, like local expiry). A throw is reported; the stream goes on.
   */
  observe(observer: (event: SyncEvent) => void): Subscription;
  /** A message expired on this device's timer: the unread counts drop it as the server would. */
  expired(conversationId: string, seq: number): void;
  /**
   * Signed out, or someone else signed in: stops the stream (as `stop`) and forgets the unread
   * counts, telling `onUnreadChange` of each that drops to 0. The next account's come with its
   * first start's snapshot.
   */
  accountChanged(): Promise<void>;
};

export type SyncEngineOptions = {
  transport: SyncTransport;
  cursorStore?: CursorStore;
  backoff?: BackoffOptions;
  random?: () => number;
  /**
   * Marks each message from someone else delivered once the `onEvent` handlers have it (and the
   * snapshot's newest, where past my delivered position), in one `markDeliveredMany` call per
   * pause (default true). False leaves it to the app.
   */
  deliveryReceipts?: boolean;
  /** How long delivered marks wait for more messages before they go out (default 500 ms). */
  deliveryReceiptDelayMs?: number;
};
