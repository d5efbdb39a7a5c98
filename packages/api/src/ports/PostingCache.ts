/**
 * What deciding a post needs that rarely changes: the conversation's kind, slow mode and timer,
 * my role, and whether a direct conversation is blocked. Cached per (conversation, member) for a
 * few seconds so that a send does not read it every time; last_seq and last_post_at are
 * deliberately absent (they move with every message).
 */
export type CachedPosting = {
  kind: string;
  role: string;
  slowModeSeconds: number;
  disappearSeconds: number;
  blocked: boolean;
  /** The conversation's last seq when read: a reply to anything up to it is certainly valid. */
  lastSeq: number;
};

/**
 * A send's posting context, briefly cached. The send's own write verifies membership and role
 * (both backends), so only what the write cannot check (block, slow mode, timer) may be stale:
 * this instance forgets at once when they change, others on the bus message or after the TTL.
 */
export type PostingCache = {
  get(conversationId: string, userId: string): CachedPosting | undefined;
  /** What `forget` has been called for so far: take it before reading what `set` will keep. */
  epoch(): number;
  /**
   * Keeps what was read since `epoch` was taken, unless something was forgotten meanwhile: a
   * read that began before a block and ended after its `forget` would otherwise be kept, stale,
   * for the whole TTL.
   */
  set(conversationId: string, userId: string, posting: CachedPosting, epoch: number): void;
  /** Drops every member's entry of these conversations (this instance). */
  forget(conversationIds: string[]): void;
};
