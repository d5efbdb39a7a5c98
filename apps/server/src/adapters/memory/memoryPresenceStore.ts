import type { PresenceStore } from '@mvp/api';

/** The embedded PresenceStore: one process, so a map of users to their instances' deadlines. */
export function createMemoryPresenceStore(): PresenceStore {
  const users = new Map<string, Map<string, number>>();

  /** Drops entries past their deadline; answers the latest remaining deadline (0 when none). */
  const prune = (entries: Map<string, number>, now: number): number => {
    let latest = 0;
    for (const [instance, deadline] of entries) {
      if (deadline > now) latest = Math.max(latest, deadline);
      else entries.delete(instance);
    }
    return latest;
  };

  return {
    async touch(userId, instanceId, deadline, now) {
      let entries = users.get(userId);
      if (!entries) users.set(userId, (entries = new Map<string, number>()));
      const wasOnline = prune(entries, now) > 0;
      entries.set(instanceId, deadline);
      return wasOnline;
    },
    async leave(userId, instanceId, now) {
      const entries = users.get(userId);
      if (!entries) return true;
      entries.delete(instanceId);
      if (prune(entries, now) > 0) return false;
      users.delete(userId);
      return true;
    },
    async online(userIds, now) {
      return new Set(
        userIds.filter((id) => [...(users.get(id)?.values() ?? [])].some((d) => d > now)),
      );
    },
    async sweep(now, limit) {
      const gone: { userId: string; lastDeadline: number }[] = [];
      for (const [userId, entries] of users) {
        if (gone.length >= limit) break;
        const lastDeadline = Math.max(0, ...entries.values());
        if (lastDeadline > now) continue;
        users.delete(userId);
        gone.push({ userId, lastDeadline });
      }
      return gone;
    },
  };
}
