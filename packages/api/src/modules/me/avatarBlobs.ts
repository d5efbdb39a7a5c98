import { randomBytes } from 'node:crypto';
import type { Context } from '../../context';

/**
 * A fresh, unguessable key per upload: the URL changes with every avatar, so it can be cached
 * forever, and knowing a user id is not enough to fetch their picture.
 */
export function newAvatarKey(userId: string, extension: 'png' | 'jpg' | 'webp'): string {
  return `avatars/${userId}/${randomBytes(16).toString('hex')}.${extension}`;
}

/**
 * Best effort: called once no row points at `key`, so a failure only leaves an unreachable blob.
 * It is logged (the key, never bytes) so that an operator can sweep it.
 */
export async function deleteBlobQuietly(ctx: Context, key: string): Promise<void> {
  try {
    await ctx.ports.blobs.delete(key);
  } catch (err) {
    ctx.log.warn({ err, event: 'avatar_blob_orphaned', key }, 'could not delete an avatar blob');
  }
}
