import type { CachedPosting, Clock, PostingCache, Ports } from '../../ports';

const MAX_CONVERSATIONS = 20_000;
/** How long another instance may decide on a block or setting whose bus message it missed. */
export const POSTING_CACHE_MS = 5_000;

/**
 * PostingCache in memory, per instance: entries live `ttlMs` (what bounds how long another
 * instance may miss a block or a settings change whose bus message was lost). Kept by
 * conversation so that one change forgets every member's entry at once.
 */
export function createPostingCache(clock: Clock, ttlMs: number): PostingCache {
  type Entry = { posting: CachedPosting; at: number };
  const byConversation = new Map<string, Map<string, Entry>>();
  // One counter for all conversations: forgetting is rare (blocks, settings), so a read that
  // overlaps any forget is simply not kept, and nothing grows per conversation.
  let forgets = 0;
  return {
    get(conversationId, userId) {
      const hit = byConversation.get(conversationId)?.get(userId);
      return hit && clock.now() - hit.at < ttlMs ? hit.posting : undefined;
    },
    epoch: () => forgets,
    set(conversationId, userId, posting, epoch) {
      if (ttlMs <= 0 || epoch !== forgets) return;
      let members = byConversation.get(conversationId);
      if (!members) {
        byConversation.set(conversationId, (members = new Map<string, Entry>()));
        // Map keeps insertion order: the oldest conversation goes first.
        if (byConversation.size > MAX_CONVERSATIONS)
          byConversation.delete(byConversation.keys().next().value!);
      }
      members.set(userId, { posting, at: clock.now() });
    },
    forget(conversationIds) {
      forgets += 1;
      for (const id of conversationIds) byConversation.delete(id);
    },
  };
}

/** Forgotten on every instance: a block or a conversation setting changed. */
export const POSTING_CHANGED_CHANNEL = 'messages:posting-changed';
export type PostingChangedMessage = { conversationIds: string[] };

/**
 * What a post is decided on changed (a block, slow mode, the timer): this instance forgets at
 * once, the others when the bus message arrives (or when their entries expire, if it is lost).
 */
export async function announcePostingChanged(
  ports: Pick<Ports, 'posting' | 'bus'>,
  conversationIds: string[],
): Promise<void> {
  if (conversationIds.length === 0) return;
  ports.posting.forget(conversationIds);
  const message: PostingChangedMessage = { conversationIds };
  await ports.bus.publish(POSTING_CHANGED_CHANNEL, message);
}
