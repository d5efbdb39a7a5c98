import type { TConversation } from '@mvp/contracts';
import type { Context } from '../../context';
import { AppError } from '../../errors/AppError';
import type { AvatarImage } from '../me/avatar.service';
import { deleteBlobQuietly, newAvatarKey } from '../me/avatarBlobs';
import { recordEvents, wake } from '../sync/events';
import * as repo from './conversations.repo';
import { getConversation, lockedAdmin, requireAdmin } from './conversations.service';

/**
 * Points the conversation at `next` (or none) by compare-and-set on the key read first, tells
 * the members, and deletes the replaced blob; a lost race deletes `next` instead and answers
 * CONFLICT, so no blob is ever left without a row pointing at it.
 */
async function swapConversationAvatar(
  ctx: Context,
  me: string,
  conversationId: string,
  next: string | null,
): Promise<TConversation> {
  const { conversation } = await requireAdmin(ctx, conversationId, me);
  const previous = conversation.avatar_key;
  const now = ctx.ports.clock.now();
  const swapped = await ctx.ports.db.transaction().execute(async (trx) => {
    await lockedAdmin(ctx, trx, conversationId, me);
    const result = await trx
      .updateTable('conversations')
      .set({ avatar_key: next, updated_at: now })
      .where('id', '=', conversationId)
      .where('avatar_key', previous === null ? 'is' : '=', previous)
      .executeTakeFirst();
    if (Number(result.numUpdatedRows) !== 1) return null;
    const current = (await repo.findConversation(trx, conversationId))!;
    const members = await repo.listMembers(trx, conversationId);
    await recordEvents(
      trx,
      members.map((m) => m.user_id),
      (u) => ({
        type: 'conversation.updated',
        conversation: repo.toConversation(current, {
          user_id: u,
          role: members.find((m) => m.user_id === u)!.role,
        }),
      }),
      now,
    );
    return members.map((m) => m.user_id);
  });
  if (!swapped) {
    if (next) await deleteBlobQuietly(ctx, next);
    throw new AppError('CONFLICT', 'The picture changed meanwhile; try again');
  }
  if (previous) await deleteBlobQuietly(ctx, previous);
  await wake(ctx.ports, swapped);
  return getConversation(ctx, conversationId, me);
}

/** An admin sets a group's or channel's picture (already read and sniffed at the edge). */
export async function setConversationAvatar(
  ctx: Context,
  me: string,
  conversationId: string,
  image: AvatarImage,
): Promise<TConversation> {
  await requireAdmin(ctx, conversationId, me);
  const key = newAvatarKey(conversationId, image.extension);
  try {
    await ctx.ports.blobs.put(key, image.body, image.contentType);
  } catch (err) {
    await deleteBlobQuietly(ctx, key);
    throw err;
  }
  try {
    return await swapConversationAvatar(ctx, me, conversationId, key);
  } catch (err) {
    if (!(err instanceof AppError && err.appCode === 'CONFLICT')) await deleteBlobQuietly(ctx, key);
    throw err;
  }
}

export function removeConversationAvatar(
  ctx: Context,
  me: string,
  conversationId: string,
): Promise<TConversation> {
  return swapConversationAvatar(ctx, me, conversationId, null);
}
