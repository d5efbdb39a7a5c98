import { randomUUID } from 'node:crypto';
import type { Clock, KeyValue } from '@mvp/api';

type Entry = { value: string; expiresAt: number | null };

const SWEEP_INTERVAL_MS = 30_000;

/** The embedded KeyValue: a map with lazy expiry plus a periodic sweep so it cannot grow forever. */
export function createMemoryKeyValue(clock: Clock): KeyValue {
  const entries = new Map<string, Entry>();

  const live = (key: string): Entry | undefined => {
    const entry = entries.get(key);
    if (entry && entry.expiresAt !== null && entry.expiresAt <= clock.now()) {
      entries.delete(key);
      return undefined;
    }
    return entry;
  };

  const sweep = setInterval(() => {
    const now = clock.now();
    for (const [key, entry] of entries) {
      if (entry.expiresAt !== null && entry.expiresAt <= now) entries.delete(key);
    }
  }, SWEEP_INTERVAL_MS);
  sweep.unref();

  const kv: KeyValue = {
    async get(key) {
      return live(key)?.value ?? null;
    },
    async set(key, value, options = {}) {
      if (options.ifNotExists && live(key)) return false;
      if (options.ifExists && !live(key)) return false;
      entries.set(key, { value, expiresAt: options.ttlMs ? clock.now() + options.ttlMs : null });
      return true;
    },
    async del(key) {
      const existed = live(key) !== undefined;
      entries.delete(key);
      return existed;
    },
    async incr(key, options = {}) {
      const entry = live(key);
      const by = options.by ?? 1;
      if (!entry) {
        entries.set(key, {
          value: String(by),
          expiresAt: options.ttlMs ? clock.now() + options.ttlMs : null,
        });
        return by;
      }
      const next = Number(entry.value) + by;
      if (!Number.isFinite(next)) throw new Error(`incr: value of ${key} is not a number`);
      entry.value = String(next);
      return next;
    },
    async ttlMs(key) {
      const entry = live(key);
      return entry?.expiresAt != null ? entry.expiresAt - clock.now() : null;
    },
    async acquireLock(name, ttlMs) {
      const key = `lock:${name}`;
      const token = randomUUID();
      if (!(await kv.set(key, token, { ttlMs, ifNotExists: true }))) return null;
      return {
        async release() {
          if (live(key)?.value === token) entries.delete(key);
        },
        async extend(ms) {
          const entry = live(key);
          if (entry?.value !== token) return false;
          entry.expiresAt = clock.now() + ms;
          return true;
        },
      };
    },
    async close() {
      clearInterval(sweep);
      entries.clear();
    },
  };
  return kv;
}
