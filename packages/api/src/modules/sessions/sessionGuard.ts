import type { Kysely } from 'kysely';
import type { DB } from '@mvp/db';
import type { Clock, LiveSession, SessionGuard } from '../../ports';
import { findLiveSession } from './sessions.repo';

const MAX_ENTRIES = 50_000;

/**
 * The per-call session check with a short cache: at most `cacheMs` of staleness on other
 * instances (this one forgets at once on revocation), and one query per session per window.
 */
export function createSessionGuard(db: Kysely<DB>, clock: Clock, cacheMs: number): SessionGuard {
  const cache = new Map<string, { live: LiveSession | null; at: number }>();
  return {
    async check(sessionId) {
      const now = clock.now();
      const hit = cache.get(sessionId);
      if (hit && now - hit.at < cacheMs) return hit.live;
      const row = await findLiveSession(db, sessionId, now);
      const live = row ? { userId: row.user_id, deviceId: row.device_id } : null;
      if (cacheMs > 0) {
        // Map keeps insertion order: re-inserting moves the entry to the end, oldest go first.
        cache.delete(sessionId);
        cache.set(sessionId, { live, at: now });
        if (cache.size > MAX_ENTRIES) cache.delete(cache.keys().next().value!);
      }
      return live;
    },
    forget(sessionId) {
      cache.delete(sessionId);
    },
  };
}
