import type { TMe } from '@mvp/contracts';
import type { Context } from '../../context';
import { AppError } from '../../errors/AppError';
import { enforceLimit } from '../../rateLimit';
import { findAvatarState, swapAvatarKey } from './avatar.repo';
import { deleteBlobQuietly, newAvatarKey } from './avatarBlobs';
import { getMe } from './me.service';

/** An image the edge has already read and sniffed (apps/server's imageIntake). */
export type AvatarImage = {
  body: Uint8Array;
  contentType: 'image/png' | 'image/jpeg' | 'image/webp';
  extension: 'png' | 'jpg' | 'webp';
};

/** Uploads per account: generous for people, tight for a script filling the blob store. */
export const AVATAR_UPLOAD_LIMIT = { points: 20, durationSeconds: 3600 };

// Losing a compare-and-set means another upload of the same account landed in between; one
// re-read settles an ordinary double tap, a second loss is a storm the caller may retry.
const SWAP_ATTEMPTS = 2;

/**
 * Points the row at `next` (a stored blob, or null) by compare-and-set on the key read just
 * before, then deletes the blob it replaced. Whoever wins a swap owns deleting what it replaced,
 * so concurrent changes never leave a blob behind. False after losing every attempt;
 * UNAUTHORIZED when the account is gone (deleted while this request ran).
 */
async function swapAvatar(ctx: Context, userId: string, next: string | null): Promise<boolean> {
  for (let attempt = 0; attempt < SWAP_ATTEMPTS; attempt++) {
    const current = await findAvatarState(ctx.ports.db, userId);
    if (!current) throw new AppError('UNAUTHORIZED', 'Session ended');
    if (current.key === next) return true;
    if (await swapAvatarKey(ctx.ports.db, userId, current.key, next, ctx.ports.clock.now())) {
      if (current.key) await deleteBlobQuietly(ctx, current.key);
      return true;
    }
  }
  return false;
}

/** Stores the image under a fresh key and makes it the account's avatar. */
export async function setAvatar(ctx: Context, userId: string, image: AvatarImage): Promise<TMe> {
  const key = newAvatarKey(userId, image.extension);
  try {
    await ctx.ports.blobs.put(key, image.body, image.contentType);
  } catch (err) {
    // A store that failed half-way may still hold part of it (the local store's sidecar).
    await deleteBlobQuietly(ctx, key);
    throw err;
  }
  let swapped: boolean;
  try {
    swapped = await swapAvatar(ctx, userId, key);
  } catch (err) {
    // The row never pointed at the new blob: nothing may stay behind.
    await deleteBlobQuietly(ctx, key);
    throw err;
  }
  if (!swapped) {
    await deleteBlobQuietly(ctx, key);
    throw new AppError('CONFLICT', 'Your avatar changed meanwhile; try again');
  }
  ctx.log.info({ event: 'avatar_set', userId, bytes: image.body.byteLength }, 'avatar set');
  return getMe(ctx, userId);
}

/** Removes the account's avatar (and its blob); no avatar is not an error. */
export async function removeAvatar(ctx: Context, userId: string): Promise<TMe> {
  if (!(await swapAvatar(ctx, userId, null))) {
    throw new AppError('CONFLICT', 'Your avatar changed meanwhile; try again');
  }
  return getMe(ctx, userId);
}

/** Spends one upload of the account's budget (TOO_MANY_REQUESTS with the wait when over). */
export function spendAvatarUpload(ctx: Context, userId: string): Promise<void> {
  return enforceLimit(ctx, 'avatar-upload-account', AVATAR_UPLOAD_LIMIT, userId);
}
