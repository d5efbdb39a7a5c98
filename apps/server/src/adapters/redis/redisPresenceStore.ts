import type { Redis } from 'ioredis';
import type { PresenceStore } from '@mvp/api';

/*
 * Layout: a hash per user (`presence:u:<userId>`: instance id → deadline ms) and one sorted set
 * (`presence:deadlines`: user id → latest deadline) that lets `sweep` find users whose instances
 * all stopped refreshing without scanning keys. Each operation is one Lua script, so instances
 * never interleave halfway and a swept user is answered to exactly one caller.
 *
 * SWEEP builds hash keys from a prefix inside the script, which Redis Cluster would refuse; the
 * deployment this targets is a single Redis (docker-compose), where that is fine.
 */

// Shared by the scripts: drop dead entries of KEYS[1] and answer the latest live deadline.
const PRUNE = `
local function prune(key, now)
  local latest = 0
  local entries = redis.call('HGETALL', key)
  for i = 1, #entries, 2 do
    local deadline = tonumber(entries[i + 1])
    if deadline > now then
      if deadline > latest then latest = deadline end
    else
      redis.call('HDEL', key, entries[i])
    end
  end
  return latest
end
`;

// KEYS: user hash, deadlines zset. ARGV: instance, deadline, now, user id.
const TOUCH = `${PRUNE}
local was = prune(KEYS[1], tonumber(ARGV[3]))
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], 'GT', ARGV[2], ARGV[4])
if was > 0 then return 1 end
return 0`;

// KEYS: user hash, deadlines zset. ARGV: instance, now, user id.
const LEAVE = `${PRUNE}
redis.call('HDEL', KEYS[1], ARGV[1])
local latest = prune(KEYS[1], tonumber(ARGV[2]))
if latest > 0 then
  redis.call('ZADD', KEYS[2], latest, ARGV[3])
  return 0
end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[3])
return 1`;

// KEYS: deadlines zset. ARGV: now, limit, user hash prefix. Answers {user, last deadline, ...}.
const SWEEP = `${PRUNE}
local now = tonumber(ARGV[1])
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'WITHSCORES', 'LIMIT', 0, ARGV[2])
local gone = {}
for i = 1, #due, 2 do
  local key = ARGV[3] .. due[i]
  local latest = prune(key, now)
  if latest > 0 then
    redis.call('ZADD', KEYS[1], latest, due[i])
  else
    redis.call('DEL', key)
    redis.call('ZREM', KEYS[1], due[i])
    table.insert(gone, due[i])
    table.insert(gone, due[i + 1])
  end
end
return gone`;

export function createRedisPresenceStore(redis: Redis, namespace: string): PresenceStore {
  const userPrefix = `${namespace}presence:u:`;
  const deadlines = `${namespace}presence:deadlines`;

  return {
    async touch(userId, instanceId, deadline, now) {
      const was = await redis.eval(
        TOUCH,
        2,
        userPrefix + userId,
        deadlines,
        instanceId,
        deadline,
        now,
        userId,
      );
      return Number(was) === 1;
    },
    async leave(userId, instanceId, now) {
      const gone = await redis.eval(
        LEAVE,
        2,
        userPrefix + userId,
        deadlines,
        instanceId,
        now,
        userId,
      );
      return Number(gone) === 1;
    },
    async online(userIds, now) {
      if (userIds.length === 0) return new Set();
      const pipeline = redis.pipeline();
      for (const id of userIds) pipeline.hvals(userPrefix + id);
      const replies = (await pipeline.exec()) ?? [];
      const online = new Set<string>();
      replies.forEach(([err, values], i) => {
        if (err) throw err;
        if ((values as string[]).some((d) => Number(d) > now)) online.add(userIds[i]!);
      });
      return online;
    },
    async sweep(now, limit) {
      const flat = (await redis.eval(SWEEP, 1, deadlines, now, limit, userPrefix)) as string[];
      const gone: { userId: string; lastDeadline: number }[] = [];
      for (let i = 0; i < flat.length; i += 2)
        gone.push({ userId: flat[i]!, lastDeadline: Number(flat[i + 1]) });
      return gone;
    },
  };
}
