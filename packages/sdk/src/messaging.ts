import type { TRPCClient } from '@trpc/client';
import type { AppRouter } from '@mvp/api';
import { base64ToBytes } from './base64';
import type { RouterInputs, RouterOutputs } from './types';

type Out = RouterOutputs;
type In = RouterInputs;

type RawMessage = Out['messages']['send'];
/**
 * A stored message. `ciphertext` is null once the message was deleted for everyone (the
 * tombstone keeps its place in the order).
 */
export type Message = Omit<RawMessage, 'ciphertext'> & { ciphertext: Uint8Array | null };
type RawEnvelope = Extract<RawSyncEvent, { type: 'envelope' }>['envelope'];
/** Opaque bytes one device sent to this one (key shares, call payloads). */
export type Envelope = Omit<RawEnvelope, 'ciphertext'> & { ciphertext: Uint8Array };
export type Conversation = Out['conversations']['get'];
export type ConversationMember = Out['conversations']['members']['members'][number];
export type Receipts = Out['messages']['markRead'];

/** The server's event union, with base64 strings (what the wire carries). */
export type RawSyncEvent =
  Out['sync']['events'] extends AsyncIterable<infer T>
    ? T extends { data: infer D }
      ? D
      : never
    : never;

type Decoded<E> = E extends { message: RawMessage }
  ? Omit<E, 'message'> & { message: Message }
  : E extends { envelope: RawEnvelope }
    ? Omit<E, 'envelope'> & { envelope: Envelope }
    : E;
/** Everything the sync stream delivers, ciphertexts as bytes. */
export type SyncEvent = Decoded<RawSyncEvent>;

type RawSnapshot = Out['sync']['snapshot'];
type RawSnapshotEntry = RawSnapshot['conversations'][number];
export type SnapshotConversation = Omit<RawSnapshotEntry, 'lastMessage'> & {
  lastMessage: Message | null;
};
/** A cold start's state: my conversations (last message, unread, my read position) and requests. */
export type Snapshot = Omit<RawSnapshot, 'conversations'> & {
  conversations: SnapshotConversation[];
};

export function decodeMessage(message: RawMessage): Message {
  return {
    ...message,
    ciphertext: message.ciphertext === null ? null : base64ToBytes(message.ciphertext),
  };
}

/**
 * Turns the wire's base64 into bytes for any event carrying a message or an envelope, including
 * event types this SDK version does not know yet (the server grows its union over time).
 */
export function decodeEvent(event: RawSyncEvent): SyncEvent {
  const carrier = event as { message?: RawMessage; envelope?: RawEnvelope };
  if (carrier.message && typeof carrier.message === 'object')
    return { ...event, message: decodeMessage(carrier.message) } as SyncEvent;
  if (carrier.envelope && typeof carrier.envelope === 'object')
    return {
      ...event,
      envelope: { ...carrier.envelope, ciphertext: base64ToBytes(carrier.envelope.ciphertext) },
    } as SyncEvent;
  return event as SyncEvent;
}

export function decodeSnapshot(snapshot: RawSnapshot): Snapshot {
  return {
    ...snapshot,
    conversations: snapshot.conversations.map((entry) => ({
      ...entry,
      lastMessage: entry.lastMessage ? decodeMessage(entry.lastMessage) : null,
    })),
  };
}

export type HistoryPage = { messages: Message[]; more: boolean };
export type HistoryOptions = Omit<In['messages']['history'], 'conversationId'>;

/** `client.messaging`: conversations and message history; sending goes through `client.outbox`. */
export type MvpMessaging = {
  conversations: {
    /** The direct conversation with `userId` (the same one every time for a pair). */
    createDirect(userId: string): Promise<Conversation>;
    /** A group of my contacts; I am its owner. */
    createGroup(input: {
      title: string;
      description?: string;
      memberIds?: string[];
    }): Promise<Conversation>;
    list(): Promise<Conversation[]>;
    /** NOT_FOUND for conversations I am not in, as for ones that do not exist. */
    get(conversationId: string): Promise<Conversation>;
    members(conversationId: string): Promise<ConversationMember[]>;
    /** Admins add contacts; answers the conversation as it is now. */
    addMembers(conversationId: string, userIds: string[]): Promise<Conversation>;
    /** Admins remove someone (they get `conversation.left` with reason `removed`). */
    removeMember(conversationId: string, userId: string): Promise<void>;
    leave(conversationId: string): Promise<void>;
  };
  messages: {
    /**
     * A page of history: the newest by default, older than `before` (newest first), or newer
     * than `after` (oldest first); `more` says whether that direction has more.
     */
    history(conversationId: string, options?: HistoryOptions): Promise<HistoryPage>;
    /** My read position moves forward to `seq` (never back); other members get a receipt. */
    markRead(conversationId: string, seq: number): Promise<Receipts>;
    markDelivered(conversationId: string, seq: number): Promise<Receipts>;
  };
};

export function createMessagingClient(api: TRPCClient<AppRouter>): MvpMessaging {
  return {
    conversations: {
      createDirect: (userId) => api.conversations.create.mutate({ kind: 'direct', userId }),
      createGroup: (input) => api.conversations.create.mutate({ kind: 'group', ...input }),
      list: async () => (await api.conversations.list.query()).conversations,
      get: (id) => api.conversations.get.query({ id }),
      members: async (id) => (await api.conversations.members.query({ id })).members,
      addMembers: (id, userIds) => api.conversations.addMembers.mutate({ id, userIds }),
      removeMember: async (id, userId) => {
        await api.conversations.removeMember.mutate({ id, userId });
      },
      leave: async (id) => {
        await api.conversations.leave.mutate({ id });
      },
    },
    messages: {
      history: async (conversationId, options = {}) => {
        const page = await api.messages.history.query({ conversationId, ...options });
        return { messages: page.messages.map(decodeMessage), more: page.more };
      },
      markRead: (conversationId, seq) => api.messages.markRead.mutate({ conversationId, seq }),
      markDelivered: (conversationId, seq) =>
        api.messages.markDelivered.mutate({ conversationId, seq }),
    },
  };
}
