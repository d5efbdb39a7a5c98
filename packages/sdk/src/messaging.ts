import type { TRPCClient } from '@trpc/client';
import type { AppRouter } from '@mvp/api';
import { base64ToBytes, bytesToBase64 } from './base64';
import type { RouterInputs, RouterOutputs } from './types';
import { withoutResult } from './withoutResult';

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
export type Invite = Out['conversations']['createInvite'];
export type InvitePreview = Out['conversations']['previewInvite'];
export type ConversationChanges = Omit<In['conversations']['update'], 'id'>;
export type InviteOptions = Omit<In['conversations']['createInvite'], 'id'>;
export type MemberRole = In['conversations']['setRole']['role'];

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
/**
 * A cold start's state: my conversations (last message, unread, my read position; every one, the
 * last changed first) and requests. A conversation may already reflect events that follow
 * the snapshot on the stream (it was read a page at a time, after `cursor`): a message at or
 * below its `conversation.lastSeq` is already in it.
 */
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

type NewRoom = { title: string; description?: string; memberIds?: string[] };

/**
 * `client.messaging`: conversations, invites and messages. Sending goes through
 * `client.outbox` (queued while offline, retried with the same id); with end-to-end encryption,
 * sends and edits go through `client.e2ee`, which seals the bytes these calls carry as they are.
 */
export type MvpMessaging = {
  conversations: {
    /** The direct conversation with `userId` (the same one every time for a pair). */
    createDirect(userId: string): Promise<Conversation>;
    /** A group of my contacts; I am its owner. */
    createGroup(input: NewRoom): Promise<Conversation>;
    /** A channel: only its owner and admins post, the others read (and join by invite). */
    createChannel(input: NewRoom): Promise<Conversation>;
    list(): Promise<Conversation[]>;
    /** NOT_FOUND for conversations I am not in, as for ones that do not exist. */
    get(conversationId: string): Promise<Conversation>;
    members(conversationId: string): Promise<ConversationMember[]>;
    /** Admins add contacts; answers the conversation as it is now. */
    addMembers(conversationId: string, userIds: string[]): Promise<Conversation>;
    /** Admins remove someone (they get `conversation.left` with reason `removed`). */
    removeMember(conversationId: string, userId: string): Promise<void>;
    leave(conversationId: string): Promise<void>;
    /** Admins change the title, description, slow mode or disappearing-messages timer. */
    update(conversationId: string, changes: ConversationChanges): Promise<Conversation>;
    /** The owner makes admins; admins restrict (read only) or restore members. */
    setRole(conversationId: string, userId: string, role: MemberRole): Promise<void>;
    /** The owner hands over; they stay on as an admin. */
    transferOwnership(conversationId: string, userId: string): Promise<void>;
    /** The owner deletes it for everyone (`conversation.left` with reason `deleted`). */
    delete(conversationId: string): Promise<void>;
    removeAvatar(conversationId: string): Promise<void>;
  };
  invites: {
    /** Admins make a code, optionally expiring and limited in uses. */
    create(conversationId: string, options?: InviteOptions): Promise<Invite>;
    list(conversationId: string): Promise<Invite[]>;
    revoke(code: string): Promise<void>;
    /** What the code leads to, without joining. */
    preview(code: string): Promise<InvitePreview>;
    join(code: string): Promise<Conversation>;
  };
  messages: {
    /**
     * A page of history: the newest by default, older than `before` (newest first), or newer
     * than `after` (oldest first); `more` says whether that direction has more.
     */
    history(conversationId: string, options?: HistoryOptions): Promise<HistoryPage>;
    /** My read position moves forward to `seq` (never back); senders it passes get a receipt. */
    markRead(conversationId: string, seq: number): Promise<Receipts>;
    markDelivered(conversationId: string, seq: number): Promise<Receipts>;
    /**
     * The sender replaces the bytes; `editedAt` shows it. With a `clientEditId` (8-64 letters,
     * digits, `_`, `-`), the same id again answers the message as it is: safe to retry.
     */
    edit(
      conversationId: string,
      seq: number,
      content: { contentType: string; ciphertext: Uint8Array; clientEditId?: string },
    ): Promise<Message>;
    /** For everyone (the sender, or an admin): a tombstone keeps its place. */
    delete(conversationId: string, seq: number): Promise<void>;
    /** Hidden on all my devices only. */
    deleteForMe(conversationId: string, seq: number): Promise<void>;
    /** Adds (or with `on: false` takes back) one emoji of mine. */
    react(conversationId: string, seq: number, emoji: string, on?: boolean): Promise<void>;
    pin(conversationId: string, seq: number, pinned?: boolean): Promise<void>;
    pins(conversationId: string): Promise<Message[]>;
    /** Renew every few seconds while typing; the others see it for ~6 s. */
    typing(conversationId: string): Promise<void>;
  };
};

/** `seen`: the messages a page (history, pins) answered, for the local expiry timers. */
export function createMessagingClient(
  api: TRPCClient<AppRouter>,
  seen: (messages: Message[]) => void = () => undefined,
): MvpMessaging {
  const page = (messages: Message[]) => (seen(messages), messages);
  return {
    conversations: {
      createDirect: (userId) => api.conversations.create.mutate({ kind: 'direct', userId }),
      createGroup: (input) => api.conversations.create.mutate({ kind: 'group', ...input }),
      createChannel: (input) => api.conversations.create.mutate({ kind: 'channel', ...input }),
      list: async () => (await api.conversations.list.query()).conversations,
      get: (id) => api.conversations.get.query({ id }),
      members: async (id) => (await api.conversations.members.query({ id })).members,
      addMembers: (id, userIds) => api.conversations.addMembers.mutate({ id, userIds }),
      removeMember: (id, userId) =>
        withoutResult(api.conversations.removeMember.mutate({ id, userId })),
      leave: (id) => withoutResult(api.conversations.leave.mutate({ id })),
      update: (id, changes) => api.conversations.update.mutate({ id, ...changes }),
      setRole: (id, userId, role) =>
        withoutResult(api.conversations.setRole.mutate({ id, userId, role })),
      transferOwnership: (id, userId) =>
        withoutResult(api.conversations.transferOwnership.mutate({ id, userId })),
      delete: (id) => withoutResult(api.conversations.delete.mutate({ id })),
      removeAvatar: (id) => withoutResult(api.conversations.removeAvatar.mutate({ id })),
    },
    invites: {
      create: (id, options = {}) => api.conversations.createInvite.mutate({ id, ...options }),
      list: async (id) => (await api.conversations.invites.query({ id })).invites,
      revoke: (code) => withoutResult(api.conversations.revokeInvite.mutate({ code })),
      preview: (code) => api.conversations.previewInvite.query({ code }),
      join: (code) => api.conversations.join.mutate({ code }),
    },
    messages: {
      history: async (conversationId, options = {}) => {
        const answer = await api.messages.history.query({ conversationId, ...options });
        return { messages: page(answer.messages.map(decodeMessage)), more: answer.more };
      },
      markRead: (conversationId, seq) => api.messages.markRead.mutate({ conversationId, seq }),
      markDelivered: (conversationId, seq) =>
        api.messages.markDelivered.mutate({ conversationId, seq }),
      edit: async (conversationId, seq, content) =>
        decodeMessage(
          await api.messages.edit.mutate({
            conversationId,
            seq,
            contentType: content.contentType,
            ciphertext: bytesToBase64(content.ciphertext),
            ...(content.clientEditId === undefined ? {} : { clientEditId: content.clientEditId }),
          }),
        ),
      delete: (conversationId, seq) =>
        withoutResult(api.messages.delete.mutate({ conversationId, seq })),
      deleteForMe: (conversationId, seq) =>
        withoutResult(api.messages.deleteForMe.mutate({ conversationId, seq })),
      react: (conversationId, seq, emoji, on = true) =>
        withoutResult(api.messages.react.mutate({ conversationId, seq, emoji, on })),
      pin: (conversationId, seq, pinned = true) =>
        withoutResult(api.messages.pin.mutate({ conversationId, seq, pinned })),
      pins: async (conversationId) =>
        page((await api.messages.pins.query({ conversationId })).messages.map(decodeMessage)),
      typing: (conversationId) => withoutResult(api.messages.typing.mutate({ conversationId })),
    },
  };
}
