import type { TRPCClient } from '@trpc/client';
import type { AppRouter } from '@mvp/api';
import { decodeSnapshot, type RawSyncEvent, type Snapshot } from './messaging';

/**
 * Where the id of the last event the app has handled lives, so a restart resumes exactly after
 * it. `set(null)` forgets it (after a `resync`). The default keeps it in memory. The value is
 * the engine's to read: keep it as it is given (see `writeCursor` for what it holds).
 */
export type CursorStore = {
  get(): Promise<string | null>;
  set(id: string | null): Promise<void>;
};

/** A place in one account's stream: event ids count per user, so one is meaningless in another's. */
export type OwnedCursor = { userId: string; id: string };

/**
 * What the engine keeps in the store: the event id with the user whose stream it is a place in,
 * as JSON (`{"userId":"…","id":"…"}`), so a start as anyone else is told apart (and starts cold).
 */
export function writeCursor(cursor: OwnedCursor): string {
  return JSON.stringify({ userId: cursor.userId, id: cursor.id });
}

/**
 * The cursor a stored value names, or null: nothing stored, unreadable, or a bare event id kept
 * by an SDK before owners were recorded (whose it is cannot be told).
 */
export function readCursor(value: string | null): OwnedCursor | null {
  if (value === null || !value.startsWith('{')) return null;
  try {
    const parsed = JSON.parse(value) as { userId?: unknown; id?: unknown };
    const { userId, id } = parsed;
    return typeof userId === 'string' && typeof id === 'string' ? { userId, id } : null;
  } catch {
    return null;
  }
}

/** `initial`: a value as the engine wrote it to a store before (`writeCursor`). */
export function createMemoryCursorStore(initial: string | null = null): CursorStore {
  let cursor = initial;
  return {
    get: () => Promise.resolve(cursor),
    set: (id) => {
      cursor = id;
      return Promise.resolve();
    },
  };
}

/**
 * The snapshot's conversations come in pages by id (about 1 MiB each, a last message holds up to
 * 64 KiB); the app gets them all at once, the last changed first, as an unpaged snapshot lists
 * them (by `activeAt`; by last message or creation from a server without it).
 */
const byNewestActivity = (a: Activity, b: Activity) => activityOf(b) - activityOf(a);
type Activity = {
  conversation: { createdAt: string };
  lastMessage: { createdAt: string } | null;
  activeAt?: string;
};
const activityOf = (entry: Activity) =>
  Date.parse(entry.activeAt ?? entry.lastMessage?.createdAt ?? entry.conversation.createdAt);

/** Event ids are the decimal seq of the device's stream (the server's contract). */
export const isAfter = (a: string, b: string) => Number(a) > Number(b);

/** What the engine needs from the server; `client.sync` wires it to `api.sync.*`. */
export type SyncTransport = {
  /** My user id, to tell my messages and receipts from others'. */
  whoAmI(): Promise<string>;
  snapshot(): Promise<Snapshot>;
  /** The rest of a snapshot's envelopes (`moreEnvelopes`): a page after `after`, up to `upTo`. */
  pendingEnvelopes(
    after: string,
    upTo: string,
  ): Promise<{ envelopes: Snapshot['pendingEnvelopes']; more: boolean }>;
  subscribe(
    lastEventId: string | null,
    handlers: {
      onStarted(): void;
      onData(value: { id: string; data: RawSyncEvent }): void;
      onError(error: unknown): void;
      onComplete(): void;
    },
  ): { unsubscribe(): void };
  /** Envelopes up to `upTo` handled, in `owner`'s stream: never sent with another's token. */
  ack(upTo: string, owner: string): Promise<void>;
  /** `messages.markDeliveredMany` (at most 100 marks) as `owner`, like `ack`. */
  markDelivered(marks: { conversationId: string; seq: number }[], owner: string): Promise<void>;
  /**
   * The stream was refused UNAUTHORIZED: a socket authenticates once, when it opens, and its
   * access token expires (15 min) while it stays open. Opens the next subscription on a fresh
   * socket with a current token; false when there is no session to do it with (signed out).
   */
  renewConnection?(): Promise<boolean>;
};

/**
 * The engine's transport over the client's tRPC API (one `sync.events` subscription).
 * `sentAs` names the account a call must go out as (the client's guard refuses it under another
 * account's token): an ack deletes envelopes, and a delivered mark moves the position, of whoever's
 * token it carries.
 */
export function createApiSyncTransport(
  api: TRPCClient<AppRouter>,
  sentAs: (owner: string) => Record<string, unknown>,
  renewConnection?: () => Promise<boolean>,
): SyncTransport {
  return {
    ...(renewConnection ? { renewConnection } : {}),
    whoAmI: async () => (await api.me.get.query()).id,
    snapshot: async () => {
      const first = await api.sync.snapshot.query({
        pagedEnvelopes: true,
        pagedConversations: true,
      });
      const conversations = [...first.conversations];
      let more = first.moreConversations === true;
      for (let last = conversations.at(-1); more && last; last = conversations.at(-1)) {
        const page = await api.sync.conversations.query({ after: last.conversation.id });
        conversations.push(...page.conversations);
        more = page.more && page.conversations.length > 0;
      }
      return decodeSnapshot({
        ...first,
        conversations: conversations.sort(byNewestActivity),
        moreConversations: false,
      });
    },
    pendingEnvelopes: (after, upTo) => api.sync.pendingEnvelopes.query({ after, upTo }),
    subscribe: (lastEventId, handlers) =>
      api.sync.events.subscribe(
        { lastEventId },
        {
          onStarted: () => handlers.onStarted(),
          onData: (value) => handlers.onData(value),
          onError: (error) => handlers.onError(error),
          onComplete: () => handlers.onComplete(),
        },
      ),
    ack: async (upTo, owner) => {
      await api.sync.ack.mutate({ upTo }, { context: sentAs(owner) });
    },
    markDelivered: async (marks, owner) => {
      await api.messages.markDeliveredMany.mutate({ marks }, { context: sentAs(owner) });
    },
  };
}
