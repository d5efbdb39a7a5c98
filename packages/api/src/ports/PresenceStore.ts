/**
 * Which server instances hold a WebSocket of each user, shared by all instances. Each instance
 * keeps its own per-user socket counts and tells the store only when a user's count on it goes
 * from 0 to 1 (`touch`) or back to 0 (`leave`). Every entry carries a deadline that its instance
 * pushes forward while it lives (`touch` again); an instance that dies stops doing so, and
 * `sweep` then finds its users offline. Times are epoch ms from the caller's clock.
 */
export type PresenceStore = {
  /**
   * Marks `userId` connected on `instanceId` until `deadline`. Answers whether the user was
   * already online (some entry alive at `now`) before this call.
   */
  touch(userId: string, instanceId: string, deadline: number, now: number): Promise<boolean>;
  /** `instanceId` holds no socket of `userId` any more. Answers whether the user is now offline. */
  leave(userId: string, instanceId: string, now: number): Promise<boolean>;
  /** The users among `userIds` with an entry alive at `now`. */
  online(userIds: readonly string[], now: number): Promise<Set<string>>;
  /**
   * Removes users whose every entry is past its deadline and answers each with that last
   * deadline, at most `limit` of them. A user is answered to exactly one caller.
   */
  sweep(now: number, limit: number): Promise<{ userId: string; lastDeadline: number }[]>;
};
