import emojiRegex from 'emoji-regex';
import { z } from 'zod';
import { ZId } from './auth';
import { ZBase64, ZBase64Input } from './bytes';
import { ZCallEvent, ZRingingCall } from './calls';
import { ZContactRequests, ZPeopleEvent } from './people';

export { ZBase64, ZBase64Input };

export const ZSeq = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
export const ZClientMessageId = z
  .string()
  .min(8)
  .max(64)
  .regex(/^[A-Za-z0-9_-]+$/, 'letters, digits, _ and - only');
/** A MIME-like label the clients agree on (e.g. `text/plain`, `mvp/sender-key`); never parsed. */
export const ZContentType = z
  .string()
  .min(1)
  .max(64)
  .regex(/^[a-z0-9][a-z0-9.+/_-]*$/i, 'a type such as text/plain');

export const CONVERSATION_KINDS = ['direct', 'group', 'channel'] as const;
export const ZConversationKind = z.enum(CONVERSATION_KINDS);
export const MEMBER_ROLES = ['owner', 'admin', 'member', 'restricted'] as const;
export const ZMemberRole = z.enum(MEMBER_ROLES);
export type TMemberRole = z.infer<typeof ZMemberRole>;

export const ZConversation = z.object({
  id: z.string(),
  kind: ZConversationKind,
  title: z.string().nullable(),
  description: z.string().nullable(),
  /** A path on this server (groups and channels), like user avatars. */
  avatarUrl: z.string().nullable(),
  /** For a direct conversation: the other person. */
  peerId: z.string().nullable(),
  memberCount: z.number().int(),
  myRole: ZMemberRole,
  /** The newest message's seq (0: none yet). */
  lastSeq: ZSeq,
  /** Minimum seconds between one member's messages (admins exempt); 0: off. */
  slowModeSeconds: z.number().int(),
  /** New messages disappear this many seconds after sending; 0: never. */
  disappearSeconds: z.number().int(),
  createdAt: z.iso.datetime(),
});
export type TConversation = z.infer<typeof ZConversation>;

export const ZMessage = z.object({
  id: z.string(),
  conversationId: z.string(),
  /** Gapless per conversation, in send order. */
  seq: ZSeq,
  senderId: z.string(),
  senderDeviceId: z.string(),
  clientMessageId: z.string(),
  contentType: z.string(),
  /** Null once deleted for everyone: the tombstone keeps its place in the order. */
  ciphertext: ZBase64.nullable(),
  replyToSeq: ZSeq.nullable(),
  forwarded: z.boolean(),
  createdAt: z.iso.datetime(),
  editedAt: z.iso.datetime().nullable(),
  deletedAt: z.iso.datetime().nullable(),
  /** Disappearing messages: when it will be purged. */
  expiresAt: z.iso.datetime().nullable(),
  /** Each emoji with who reacted with it. */
  reactions: z.array(z.object({ emoji: z.string(), userIds: z.array(z.string()) })),
});
export type TMessage = z.infer<typeof ZMessage>;

export const ZTitle = z.string().trim().min(1).max(128);
export const ZDescription = z.string().trim().max(1024);

/**
 * One flat object (the REST shim needs an object, not a union): `direct` takes `userId`; `group`
 * takes `title`, optional `description` and `memberIds` (my contacts who have not blocked me).
 */
export const ZCreateConversationInput = z
  .object({
    kind: ZConversationKind,
    userId: ZId.optional(),
    title: ZTitle.optional(),
    description: ZDescription.optional(),
    memberIds: z.array(ZId).max(999).optional(),
  })
  .superRefine((v, issue) => {
    const wrong = (path: string, message: string) =>
      issue.addIssue({ code: 'custom', path: [path], message });
    if (v.kind === 'direct') {
      if (!v.userId) wrong('userId', 'a direct conversation needs userId');
      if (v.title !== undefined || v.description !== undefined || v.memberIds !== undefined)
        wrong('kind', 'a direct conversation takes only userId');
    } else {
      if (!v.title) wrong('title', `a ${v.kind} needs a title`);
      if (v.userId !== undefined) wrong('userId', 'use memberIds for a group');
    }
  });

export const ZConversationIdInput = z.object({ id: ZId });

export const ZSendMessageInput = z.object({
  conversationId: ZId,
  /** Chosen by the client; a resend with the same id answers the first result. */
  clientMessageId: ZClientMessageId,
  contentType: ZContentType,
  ciphertext: ZBase64Input,
  replyToSeq: ZSeq.min(1).optional(),
  forwarded: z.boolean().default(false),
});

export const ZHistoryInput = z
  .object({
    conversationId: ZId,
    /** Older than this seq (newest first)… */
    before: ZSeq.min(1).optional(),
    /** …or newer than this seq (oldest first). Neither: the newest page. */
    after: ZSeq.optional(),
    limit: z.number().int().min(1).max(200).default(50),
  })
  .refine((v) => v.before === undefined || v.after === undefined, {
    message: 'use before or after, not both',
  });
export const ZHistory = z.object({
  messages: z.array(ZMessage),
  /** Whether more exist in the direction asked. */
  more: z.boolean(),
});

export const ZMessageRefInput = z.object({ conversationId: ZId, seq: ZSeq.min(1) });
export const ZEditMessageInput = ZMessageRefInput.extend({
  contentType: ZContentType,
  ciphertext: ZBase64Input,
  /**
   * Names this edit, as `clientMessageId` names a send: the same id again answers the message as
   * it is and changes nothing (a retry after a lost answer), whatever happened to it since.
   */
  clientEditId: ZClientMessageId.optional(),
});
/** One emoji (a grapheme cluster of at most 32 bytes), e.g. "👍" or "👍🏽". */
// Exactly one emoji (flags, keycaps, skin tones, ZWJ families included), as Unicode lists
// them: reactions are stored readable by the server, so they must not carry words.
const ONE_EMOJI = new RegExp(`^(?:${emojiRegex().source})$`);
export const ZEmoji = z
  .string()
  .min(1)
  .max(32)
  .refine((s) => new TextEncoder().encode(s).length <= 32 && ONE_EMOJI.test(s), 'one emoji');
export const ZReactInput = ZMessageRefInput.extend({ emoji: ZEmoji, on: z.boolean() });

export const ZUpdateConversationInput = z
  .object({
    id: ZId,
    title: ZTitle.optional(),
    description: ZDescription.optional(),
    slowModeSeconds: z.number().int().min(0).max(86_400).optional(),
    disappearSeconds: z
      .number()
      .int()
      .min(0)
      .max(365 * 86_400)
      .optional(),
  })
  .refine(
    (input) =>
      input.title !== undefined ||
      input.description !== undefined ||
      input.slowModeSeconds !== undefined ||
      input.disappearSeconds !== undefined,
    { error: 'Nothing to change: give a title, description, slowModeSeconds or disappearSeconds' },
  );
export const ZSetRoleInput = z.object({
  id: ZId,
  userId: ZId,
  role: z.enum(['admin', 'member', 'restricted']),
});

export const ZInvite = z.object({
  code: z.string(),
  conversationId: z.string(),
  expiresAt: z.iso.datetime().nullable(),
  maxUses: z.number().int().nullable(),
  uses: z.number().int(),
  revoked: z.boolean(),
});
export const ZCreateInviteInput = z.object({
  id: ZId,
  /** Seconds from now; absent: never expires. */
  expiresInSeconds: z
    .number()
    .int()
    .min(60)
    .max(365 * 86_400)
    .optional(),
  maxUses: z.number().int().min(1).max(100_000).optional(),
});
export const ZInviteCode = z.string().regex(/^[A-Za-z0-9_-]{22}$/, 'not an invite code');
export const ZInvitePreview = z.object({
  kind: ZConversationKind,
  title: z.string().nullable(),
  description: z.string().nullable(),
  memberCount: z.number().int(),
});

export const ZMarkInput = z.object({ conversationId: ZId, seq: ZSeq.min(1) });
/** Delivered marks in several conversations at once (at most 100). */
export const ZMarkManyInput = z.object({ marks: z.array(ZMarkInput).min(1).max(100) });
export const ZMarkedMany = z.object({
  /** The conversations I am in, each with my positions now; others are left out. */
  marked: z.array(z.object({ conversationId: z.string(), deliveredSeq: ZSeq, readSeq: ZSeq })),
});
export const ZReceipts = z.object({ deliveredSeq: ZSeq, readSeq: ZSeq });

/** Opaque bytes from one device to another (key shares, call payloads), stored until acked. */
export const ZEnvelope = z.object({
  id: z.string(),
  senderId: z.string(),
  senderDeviceId: z.string(),
  contentType: z.string(),
  ciphertext: ZBase64,
  sentAt: z.iso.datetime(),
  /**
   * The conversation the sender named (`sync.sendToDevices` with `conversationId`), stamped by
   * the server once it checked that the sender and this recipient were members when it was sent.
   */
  conversationId: z.string().optional(),
});
export type TEnvelope = z.infer<typeof ZEnvelope>;

export const ZSendToDevicesInput = z.object({
  /**
   * True when the envelopes are meant for every device of each recipient (key shares): the server
   * then refuses with DEVICES_CHANGED unless they name exactly the recipients' live devices.
   */
  allDevices: z.boolean().default(false),
  /**
   * The envelopes concern this conversation (sender-key shares and requests): the sender must be
   * a member (NOT_FOUND otherwise); an envelope to someone who is not is dropped, as one to
   * someone who blocked the sender; each stored one carries the id, so a recipient can tell a
   * key share from a member of that conversation from one a stranger made up.
   */
  conversationId: ZId.optional(),
  envelopes: z
    .array(
      z.object({
        userId: ZId,
        deviceId: ZId,
        contentType: ZContentType,
        ciphertext: ZBase64Input,
      }),
    )
    .min(1)
    .max(100),
});

export const ZEventId = z.string().regex(/^\d{1,15}$/, 'not an event id from this stream');

/** Durable events (stored, resumable by cursor) and ephemeral ones (bus only, never replayed). */
export const ZSyncEvent = z.discriminatedUnion('type', [
  z.object({ type: z.literal('message.new'), message: ZMessage }),
  z.object({ type: z.literal('conversation.joined'), conversation: ZConversation }),
  z.object({
    type: z.literal('conversation.left'),
    conversationId: z.string(),
    reason: z.enum(['left', 'removed', 'deleted']),
  }),
  z.object({
    type: z.literal('member.joined'),
    conversationId: z.string(),
    userId: z.string(),
    role: ZMemberRole,
  }),
  z.object({ type: z.literal('member.left'), conversationId: z.string(), userId: z.string() }),
  z.object({
    type: z.literal('receipt'),
    conversationId: z.string(),
    userId: z.string(),
    deliveredSeq: ZSeq,
    /** Null when that member does not share read receipts. */
    readSeq: ZSeq.nullable(),
  }),
  /** An edit, a deletion for everyone (tombstone: ciphertext null) or an expiry changed it. */
  z.object({ type: z.literal('message.updated'), message: ZMessage }),
  /** Deleted for me (on my other devices), or purged when a disappearing message expired. */
  z.object({
    type: z.literal('messages.removed'),
    conversationId: z.string(),
    seqs: z.array(ZSeq),
    reason: z.enum(['deleted_for_me', 'expired']),
  }),
  z.object({
    type: z.literal('reaction'),
    conversationId: z.string(),
    seq: ZSeq,
    userId: z.string(),
    emoji: z.string(),
    on: z.boolean(),
  }),
  z.object({
    type: z.literal('pin'),
    conversationId: z.string(),
    seq: ZSeq,
    pinned: z.boolean(),
    by: z.string(),
  }),
  /** Title, description, slow mode or timer changed, or my role did. */
  z.object({ type: z.literal('conversation.updated'), conversation: ZConversation }),
  z.object({
    type: z.literal('member.role'),
    conversationId: z.string(),
    userId: z.string(),
    role: ZMemberRole,
  }),
  /** Ephemeral: someone is typing until `until` unless renewed. */
  z.object({
    type: z.literal('typing'),
    conversationId: z.string(),
    userId: z.string(),
    until: z.iso.datetime(),
  }),
  /** For this device only: its one-time prekeys ran low; upload more. */
  z.object({ type: z.literal('keys.low'), remaining: z.number().int() }),
  /**
   * Someone I share a conversation or contact with (or I) added a device, changed its identity
   * key (a changed key is a new device), or lost one (`removed`: signed out or revoked, so
   * sender keys it held must be replaced); `verificationLost` when I had verified them.
   */
  z.object({
    type: z.literal('device.keys'),
    userId: z.string(),
    deviceId: z.string(),
    identityKey: z.string(),
    change: z.enum(['added', 'changed', 'removed']),
    verificationLost: z.boolean(),
  }),
  /** For this device only; stays until `sync.ack` covers its id. */
  z.object({ type: z.literal('envelope'), envelope: ZEnvelope }),
  /** The cursor is older than what the server keeps: drop local state and load the snapshot. */
  z.object({ type: z.literal('resync') }),
  ...ZPeopleEvent.options,
  ...ZCallEvent.options,
]);
export type TSyncEvent = z.infer<typeof ZSyncEvent>;

export const ZSyncEventsInput = z.object({
  /** The id of the last event handled; absent on a cold start (after `sync.snapshot`). */
  lastEventId: ZEventId.nullish(),
});

export const ZPendingEnvelopesInput = z.object({
  /** The last envelope id handled (the snapshot's, or the last page's). */
  after: ZEventId,
  /** The snapshot's `cursor`: what lies after it comes on the stream. */
  upTo: ZEventId,
});
export const ZPendingEnvelopes = z.object({
  envelopes: z.array(z.object({ id: z.string(), envelope: ZEnvelope })),
  /** More wait up to `upTo`: ask again after the last id here. */
  more: z.boolean(),
});

export const ZSnapshotInput = z
  .object({
    /**
     * This client reads waiting envelopes past the snapshot's first page (about 1 MiB) with
     * `sync.pendingEnvelopes` when it says `moreEnvelopes`. Without it every one comes at once.
     */
    pagedEnvelopes: z.boolean().optional(),
    /**
     * This client reads conversations past the snapshot's first page (about 1 MiB) with
     * `sync.conversations` when it says `moreConversations`. Without it every one comes at once.
     */
    pagedConversations: z.boolean().optional(),
  })
  .optional();

/** One of my conversations as a cold start shows it. */
export const ZSnapshotConversation = z.object({
  conversation: ZConversation,
  lastMessage: ZMessage.nullable(),
  unread: z.number().int(),
  /**
   * The seqs `unread` counts, oldest first, while there are at most 100 of them (null past
   * that): a message removed later lowers the count exactly when it is one of them.
   */
  unreadSeqs: z.array(ZSeq).nullable(),
  readSeq: ZSeq,
  deliveredSeq: ZSeq,
  /**
   * When the conversation last changed (a message, a member, its details): the unpaged list's
   * order, newest first. Absent from older servers.
   */
  activeAt: z.iso.datetime().optional(),
});
export type TSnapshotConversation = z.infer<typeof ZSnapshotConversation>;

export const ZConversationPageInput = z.object({
  /** The last conversation id of the snapshot's page, or of the last page read. */
  after: ZId,
});
export const ZConversationPage = z.object({
  /** By conversation id, as the snapshot's first page; see `ZSnapshot.moreConversations`. */
  conversations: z.array(ZSnapshotConversation),
  /** More follow: ask again after the last id here. */
  more: z.boolean(),
});

export const ZSnapshot = z.object({
  /** Pass as `lastEventId` to `sync.events`: the stream continues exactly after this snapshot. */
  cursor: z.string(),
  /**
   * Asked without `pagedConversations`: every conversation, newest change first, as of `cursor`.
   * Asked with it: by conversation id, as many as fit in about 1 MiB (a last message holds up to
   * 64 KiB), and the rest with `sync.conversations` when `moreConversations`. The pages are read
   * after the cursor, one by one, so each is as of its own moment: events after the cursor may be
   * in it already (a message at or below its `conversation.lastSeq` is counted already, a read
   * position only moves forward), and a conversation joined meanwhile may be in it or left out
   * (its `conversation.joined` event follows on the stream either way).
   */
  conversations: z.array(ZSnapshotConversation),
  /** More conversations follow than `conversations` holds (absent: not asked to page). */
  moreConversations: z.boolean().optional(),
  contactRequests: ZContactRequests,
  /**
   * Envelopes still waiting for this device from before `cursor` (store-until-ack survives a
   * cold start), oldest first: handle them, then `sync.ack` the last id. Asked with
   * `pagedEnvelopes`, as many as fit in about 1 MiB; when `moreEnvelopes`, read the rest with
   * `sync.pendingEnvelopes` (after the last id here, up to `cursor`) before streaming from
   * `cursor`.
   */
  pendingEnvelopes: z.array(z.object({ id: z.string(), envelope: ZEnvelope })),
  /** More envelopes wait up to `cursor` than `pendingEnvelopes` holds (absent: older server). */
  moreEnvelopes: z.boolean().optional(),
  /**
   * Calls still ringing that rang this device before `cursor` (with its offer): ring for them.
   * What happens to them next (answered elsewhere, ended) follows on the stream.
   */
  ringingCalls: z.array(ZRingingCall),
});
