import { z } from 'zod';
import { ZDisplayName, ZPassword, ZUniqueId, ZUsername } from './auth';

export const ZMe = z.object({
  id: z.string(),
  uniqueId: ZUniqueId,
  username: z.string().nullable(),
  /** E.164; only its owner ever sees it. */
  phone: z.string().nullable(),
  displayName: z.string(),
  bio: z.string().nullable(),
  avatarUrl: z.string().nullable(),
  requireOtpLogin: z.boolean(),
  createdAt: z.iso.datetime(),
});
export type TMe = z.infer<typeof ZMe>;

export const ZUpdateMeInput = z
  .object({
    displayName: ZDisplayName.optional(),
    username: ZUsername.optional(),
    bio: z.string().trim().max(280).optional(),
    /** Ask for an SMS code after the password at every login (needs a verified phone). */
    requireOtpLogin: z.boolean().optional(),
    /** Needed to turn `requireOtpLogin` off, as a password change needs it. */
    currentPassword: z.string().min(1).max(512).optional(),
  })
  .refine(
    ({ currentPassword: _, ...changes }) => Object.values(changes).some((x) => x !== undefined),
    { message: 'nothing to change' },
  );

export const ZChangePasswordInput = z.object({
  currentPassword: z.string().min(1).max(512),
  newPassword: ZPassword,
  revokeOtherSessions: z.boolean().default(true),
});

export const ZDeleteMeInput = z.object({ password: z.string().min(1).max(512) });
