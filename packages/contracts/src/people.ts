import { z } from 'zod';
import { ZId, ZUniqueId, ZUsername } from './auth';

export const PRIVACY_LEVELS = ['everyone', 'contacts', 'nobody'] as const;
export const ZPrivacyLevel = z.enum(PRIVACY_LEVELS);
export type TPrivacyLevel = z.infer<typeof ZPrivacyLevel>;

/** Who may do what to me. Defaults: found by phone by everyone (as Signal), presence for contacts. */
export const ZPrivacy = z.object({
  findByPhone: ZPrivacyLevel,
  presence: ZPrivacyLevel,
  contactRequests: ZPrivacyLevel,
  /** Whether other members see how far I read (off: they see only "delivered"), as Signal. */
  readReceipts: z.boolean(),
});
export type TPrivacy = z.infer<typeof ZPrivacy>;

export const ZUpdatePrivacyInput = ZPrivacy.partial().refine(
  (v) => Object.values(v).some((x) => x !== undefined),
  { message: 'nothing to change' },
);

export const ZPresence = z.object({
  online: z.boolean(),
  /** When the last device disconnected; null while online or when never seen. */
  lastSeenAt: z.iso.datetime().nullable(),
});
export type TPresence = z.infer<typeof ZPresence>;

/** What another user sees of a profile: only what its owner's settings (and blocks) allow. */
export const ZPublicProfile = z.object({
  id: z.string(),
  uniqueId: ZUniqueId,
  username: z.string().nullable(),
  displayName: z.string(),
  bio: z.string().nullable(),
  avatarUrl: z.string().nullable(),
  isContact: z.boolean(),
  /** Null when the owner does not show it to this viewer. */
  presence: ZPresence.nullable(),
});
export type TPublicProfile = z.infer<typeof ZPublicProfile>;

export const ZBio = z.string().trim().max(280);
export const ZUserIdInput = z.object({ userId: ZId });

/**
 * Exactly one of `username`, `uniqueId`, `phone` (exact matches) or `prefix` (username prefix,
 * paginated). Flat rather than a union so the REST shim takes it as plain query parameters.
 */
export const ZSearchInput = z.object({
  username: ZUsername.optional(),
  uniqueId: ZUniqueId.optional(),
  phone: z.string().trim().min(4).max(32).optional(),
  prefix: z
    .string()
    .trim()
    .toLowerCase()
    .regex(/^[a-z0-9_]{2,32}$/, 'at least 2 of a–z, 0–9, _')
    .optional(),
  cursor: z.string().max(64).optional(),
  limit: z.coerce.number().int().min(1).max(50).optional(),
});
export type TSearchInput = z.infer<typeof ZSearchInput>;
export const ZSearchOutput = z.object({
  users: z.array(ZPublicProfile),
  nextCursor: z.string().nullable(),
});

export const ZContactRequestInput = z.object({
  userId: ZId,
  message: z.string().trim().max(140).optional(),
});
export const ZContactRequestResult = z.object({
  status: z.enum(['pending', 'accepted', 'already_contacts']),
  requestId: z.string().nullable(),
});
export const ZRequestIdInput = z.object({ id: ZId });

export const ZContactRequest = z.object({
  id: z.string(),
  direction: z.enum(['incoming', 'outgoing']),
  user: ZPublicProfile,
  message: z.string().nullable(),
  createdAt: z.iso.datetime(),
});
export type TContactRequest = z.infer<typeof ZContactRequest>;
export const ZContactRequests = z.object({
  incoming: z.array(ZContactRequest),
  outgoing: z.array(ZContactRequest),
});
export const ZContacts = z.object({ contacts: z.array(ZPublicProfile) });
export const ZBlocks = z.object({
  blocked: z.array(
    z.object({ id: z.string(), username: z.string().nullable(), blockedAt: z.iso.datetime() }),
  ),
});

/**
 * Events about people, on each device's sync stream (`sync.events`): contact changes are durable
 * (stored, resumable); presence is ephemeral (live only).
 */
/**
 * Each change reaches every device of both people, the one who made it included (so my other
 * devices follow what I did on this one), except where the other side is not told (a block).
 * `user` and `userId` are always the other person, as the receiver sees them.
 */
export const ZPeopleEvent = z.discriminatedUnion('type', [
  z.object({ type: z.literal('contact.request.received'), request: ZContactRequest }),
  /** To my devices: I asked someone (`request.direction` is `outgoing`). */
  z.object({ type: z.literal('contact.request.sent'), request: ZContactRequest }),
  z.object({
    type: z.literal('contact.request.accepted'),
    requestId: z.string(),
    user: ZPublicProfile,
  }),
  z.object({ type: z.literal('contact.request.declined'), requestId: z.string() }),
  z.object({ type: z.literal('contact.request.cancelled'), requestId: z.string() }),
  z.object({ type: z.literal('contact.removed'), userId: z.string() }),
  /**
   * To my devices only (the blocked user is not told): our contact and any request between us
   * are gone with it.
   */
  z.object({ type: z.literal('block.added'), userId: z.string() }),
  z.object({ type: z.literal('block.removed'), userId: z.string() }),
  // Ephemeral (never stored). Null presence: its owner stopped showing it to me.
  z.object({ type: z.literal('presence'), userId: z.string(), presence: ZPresence.nullable() }),
]);
export type TPeopleEvent = z.infer<typeof ZPeopleEvent>;
