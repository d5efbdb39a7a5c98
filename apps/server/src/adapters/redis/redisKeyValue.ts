import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { KeyValue } from '@mvp/api';

// INCRBY and set the expiry only when this call created the key, atomically.
const INCR_WITH_TTL = `
local v = redis.call('INCRBY', KEYS[1], ARGV[1])
if tonumber(ARGV[2]) > 0 and redis.call('PTTL', KEYS[1]) == -1 and v == tonumber(ARGV[1]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return v`;

// Delete the lock only if we still hold it: never release someone else's lease.
const RELEASE_IF_OWNER = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

// Push the lease's expiry out only if we still hold it: never revive or lengthen someone else's.
const EXTEND_IF_OWNER = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0`;

export function createRedisKeyValue(redis: Redis, namespace: string): KeyValue {
  const PREFIX = `${namespace}kv:`;
  const kv: KeyValue = {
    async get(key) {
      return redis.get(PREFIX + key);
    },
    async set(key, value, options = {}) {
      const args: (string | number)[] = [PREFIX + key, value];
      if (options.ttlMs) args.push('PX', Math.ceil(options.ttlMs));
      if (options.ifNotExists) args.push('NX');
      if (options.ifExists) args.push('XX');
      const reply = await redis.call('SET', ...args);
      return reply === 'OK';
    },
    async del(key) {
      return (await redis.del(PREFIX + key)) > 0;
    },
    async incr(key, options = {}) {
      const reply = await redis.eval(
        INCR_WITH_TTL,
        1,
        PREFIX + key,
        options.by ?? 1,
        Math.ceil(options.ttlMs ?? 0),
      );
      return Number(reply);
    },
    async ttlMs(key) {
      const ms = await redis.pttl(PREFIX + key);
      return ms >= 0 ? ms : null;
    },
    async acquireLock(name, ttlMs) {
      const key = `${PREFIX}lock:${name}`;
      const token = randomUUID();
      const reply = await redis.set(key, token, 'PX', Math.ceil(ttlMs), 'NX');
      if (reply !== 'OK') return null;
      return {
        async release() {
          await redis.eval(RELEASE_IF_OWNER, 1, key, token);
        },
        async extend(ms) {
          return (await redis.eval(EXTEND_IF_OWNER, 1, key, token, Math.ceil(ms))) === 1;
        },
      };
    },
    async close() {},
  };
  return kv;
}
