import { z } from 'zod';
import { DEVICE_PLATFORMS, ZId } from './auth';

export const ZSession = z.object({
  id: z.string(),
  current: z.boolean(),
  device: z.object({ id: z.string(), name: z.string(), platform: z.enum(DEVICE_PLATFORMS) }),
  createdAt: z.iso.datetime(),
  lastSeenAt: z.iso.datetime(),
  expiresAt: z.iso.datetime(),
});
export type TSession = z.infer<typeof ZSession>;

export const ZSessionList = z.object({ sessions: z.array(ZSession) });
export const ZSessionIdInput = z.object({ id: ZId });
export const ZRevokeOthersOutput = z.object({ revoked: z.number().int().nonnegative() });
