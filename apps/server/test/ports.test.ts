import { randomUUID } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import {
  BUS_GAP,
  systemClock,
  type EventBus,
  type KeyValue,
  type Logger,
  type RateLimiter,
} from '@mvp/api';
import { createMemoryEventBus } from '../src/adapters/memory/memoryEventBus';
import { createMemoryKeyValue } from '../src/adapters/memory/memoryKeyValue';
import { createMemoryRateLimiter, createRedisRateLimiter } from '../src/adapters/rateLimiter';
import { createRedisEventBus } from '../src/adapters/redis/redisEventBus';
import { createRedisKeyValue } from '../src/adapters/redis/redisKeyValue';
import { eventQueue } from './helpers/collect';
import { testRedisUrl } from './helpers/env';

const silent: Logger = {
  debug: () => {},
  info: () => {},
  warn: () => {},
  error: () => {},
  child: () => silent,
};

type Impl = { name: string; bus: () => EventBus; kv: () => KeyValue; limiter: () => RateLimiter };

const redisClients: Redis[] = [];
function redis(): Redis {
  const client = new Redis(testRedisUrl!, { maxRetriesPerRequest: 1 });
  redisClients.push(client);
  return client;
}
afterAll(async () => {
  await Promise.all(redisClients.map((c) => c.quit().catch(() => undefined)));
});

// Every run checks the in-process ports; the MySQL + Redis run checks the Redis ones too.
const impls: Impl[] = [
  {
    name: 'memory',
    bus: createMemoryEventBus,
    kv: () => createMemoryKeyValue(systemClock),
    limiter: createMemoryRateLimiter,
  },
];
if (testRedisUrl) {
  const ns = () => `test:${randomUUID()}:`;
  impls.push({
    name: 'redis',
    bus: () => createRedisEventBus(redis(), redis(), silent, ns()),
    kv: () => createRedisKeyValue(redis(), ns()),
    limiter: () => createRedisRateLimiter(redis(), ns()),
  });
}

describe.each(impls)('ports: $name', (impl) => {
  it('EventBus: publishes to every subscriber of a channel, only that channel, until unsubscribed', async () => {
    const bus = impl.bus();
    const a = eventQueue<unknown>();
    const b = eventQueue<unknown>();
    const other = eventQueue<unknown>();
    const offA = await bus.subscribe('user:1', (m) => a.push(m));
    const offB = await bus.subscribe('user:1', (m) => b.push(m));
    const offOther = await bus.subscribe('user:2', (m) => other.push(m));
    await bus.publish('user:1', { kind: 'wake', n: 1 });
    expect(await a.next()).toEqual({ kind: 'wake', n: 1 });
    expect(await b.next()).toEqual({ kind: 'wake', n: 1 });

    await offA();
    await bus.publish('user:1', { n: 2 });
    await bus.publish('user:2', { n: 3 });
    expect(await b.next()).toEqual({ n: 2 });
    expect(await other.next()).toEqual({ n: 3 }); // delivered in order after n: 2
    expect(a.size).toBe(0);
    await Promise.all([offB(), offOther()]);
    await bus.close();
  });

  it('KeyValue: set/get/del, ifNotExists, ifExists, TTL, counters', async () => {
    const kv = impl.kv();
    expect(await kv.get('k')).toBeNull();
    expect(await kv.set('k', 'v0', { ifExists: true })).toBe(false);
    expect(await kv.get('k')).toBeNull();
    expect(await kv.set('k', 'v1')).toBe(true);
    expect(await kv.set('k', 'v2', { ifNotExists: true })).toBe(false);
    expect(await kv.get('k')).toBe('v1');
    expect(await kv.set('k', 'v1', { ifExists: true })).toBe(true);
    expect(await kv.ttlMs('k')).toBeNull();
    expect(await kv.del('k')).toBe(true);
    expect(await kv.del('k')).toBe(false);

    await kv.set('short', 'x', { ttlMs: 60_000 });
    const ttl = await kv.ttlMs('short');
    expect(ttl).toBeGreaterThan(50_000);
    expect(ttl).toBeLessThanOrEqual(60_000);
    await kv.set('gone', 'x', { ttlMs: 1 });
    await new Promise((r) => setTimeout(r, 5)); // expiry is the behaviour under test
    expect(await kv.get('gone')).toBeNull();

    expect(await kv.incr('n', { ttlMs: 60_000 })).toBe(1);
    expect(await kv.incr('n', { by: 4 })).toBe(5);
    expect(await kv.ttlMs('n')).toBeGreaterThan(0);
    await kv.close();
  });

  it('KeyValue: a lock has one holder at a time and only the holder releases it', async () => {
    const kv = impl.kv();
    const first = await kv.acquireLock('job', 60_000);
    expect(first).not.toBeNull();
    expect(await kv.acquireLock('job', 60_000)).toBeNull();
    await first!.release();
    const second = await kv.acquireLock('job', 60_000);
    expect(second).not.toBeNull();
    await first!.release(); // a stale holder must not free the new holder's lock
    expect(await kv.acquireLock('job', 60_000)).toBeNull();
    await second!.release();
    await kv.close();
  });

  it('KeyValue: extend keeps a lock past its first lease, never revives or takes one back', async () => {
    const kv = impl.kv();
    const pastLease = () => new Promise((r) => setTimeout(r, 150)); // expiry is under test
    const renewed = await kv.acquireLock('job', 100);
    expect(await renewed!.extend(60_000)).toBe(true);
    await pastLease();
    expect(await kv.acquireLock('job', 60_000)).toBeNull();
    await renewed!.release();

    const lapsed = await kv.acquireLock('job', 100);
    await pastLease();
    expect(await lapsed!.extend(60_000)).toBe(false);
    const next = await kv.acquireLock('job', 60_000);
    expect(next).not.toBeNull();
    expect(await lapsed!.extend(60_000)).toBe(false);
    expect(await kv.acquireLock('job', 60_000)).toBeNull(); // still the new holder's
    expect(await next!.extend(60_000)).toBe(true);
    await next!.release();
    await kv.close();
  });

  it('RateLimiter: allows the budget, then refuses with a wait; keys and rules are separate', async () => {
    const limiter = impl.limiter();
    const rule = { name: 'test', points: 2, durationSeconds: 60 };
    expect(await limiter.consume(rule, 'a')).toEqual({ allowed: true, remaining: 1 });
    expect(await limiter.consume(rule, 'a')).toEqual({ allowed: true, remaining: 0 });
    const refused = await limiter.consume(rule, 'a');
    expect(refused.allowed).toBe(false);
    expect(refused.allowed === false && refused.retryAfterMs).toBeGreaterThan(50_000);
    expect((await limiter.consume(rule, 'b')).allowed).toBe(true);
    expect((await limiter.consume({ ...rule, name: 'other' }, 'a')).allowed).toBe(true);
    await limiter.close();
  });
});

describe('Redis-backed ports without Redis', () => {
  it('the rate limiter falls back to its in-memory insurance limiter instead of failing', async () => {
    // Port 1: nothing listens. Without an offline queue every command fails at once.
    const down = new Redis('redis://127.0.0.1:1', {
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
    });
    down.on('error', () => {});
    const limiter = createRedisRateLimiter(down, 'test:down:');
    const rule = { name: 'insured', points: 2, durationSeconds: 60 };
    expect((await limiter.consume(rule, 'ip')).allowed).toBe(true);
    expect((await limiter.consume(rule, 'ip')).allowed).toBe(true);
    expect((await limiter.consume(rule, 'ip')).allowed).toBe(false);
    down.disconnect();
  });
});

if (testRedisUrl) {
  describe('Redis EventBus fan-out', () => {
    it('holds one Redis subscription per channel per instance however many local subscribers', async () => {
      const probe = redis();
      const ns = `test:${randomUUID()}:`;
      const bus = createRedisEventBus(redis(), redis(), silent, ns);
      const offs = await Promise.all([1, 2, 3].map(() => bus.subscribe('room', () => {})));
      const count = async () =>
        ((await probe.call('PUBSUB', 'NUMSUB', `${ns}bus:room`)) as [string, number])[1];
      expect(await count()).toBe(1);
      await offs[0]!();
      await offs[1]!();
      expect(await count()).toBe(1);
      await offs[2]!();
      expect(await count()).toBe(0);
    });

    it('after its connection to Redis is back, tells every local subscriber of the gap', async () => {
      const ns = `test:${randomUUID()}:`;
      const subscriber = redis();
      const bus = createRedisEventBus(redis(), subscriber, silent, ns);
      const other = createRedisEventBus(redis(), redis(), silent, ns);
      const [room, hall] = [eventQueue<unknown>(), eventQueue<unknown>()];
      await bus.subscribe('room', (m) => room.push(m));
      await bus.subscribe('hall', (m) => hall.push(m));
      subscriber.disconnect(true); // dropped, and ioredis connects (and subscribes) again
      expect([await room.next(), await hall.next()]).toEqual([BUS_GAP, BUS_GAP]);
      // Told once subscribed again: another instance's next message arrives.
      await other.publish('room', { after: 'the gap' });
      expect(await room.next()).toEqual({ after: 'the gap' });
    });

    it('delivers across instances (two buses on separate connections)', async () => {
      const ns = `test:${randomUUID()}:`;
      const a = createRedisEventBus(redis(), redis(), silent, ns);
      const b = createRedisEventBus(redis(), redis(), silent, ns);
      const got = eventQueue<unknown>();
      await b.subscribe('device:9', (m) => got.push(m));
      await a.publish('device:9', { hello: 'there' });
      expect(await got.next()).toEqual({ hello: 'there' });
    });

    it("hands its own subscribers its messages directly, once: Redis's echo is dropped", async () => {
      const ns = `test:${randomUUID()}:`;
      const a = createRedisEventBus(redis(), redis(), silent, ns);
      const b = createRedisEventBus(redis(), redis(), silent, ns);
      const atA = eventQueue<unknown>();
      const atB = eventQueue<unknown>();
      await a.subscribe('user:7', (m) => atA.push(m));
      await b.subscribe('user:7', (m) => atB.push(m));
      const first = { n: 1 };
      await a.publish('user:7', first);
      // The same object, not a copy that went through Redis.
      expect(await atA.next()).toBe(first);
      expect(await atB.next()).toEqual({ n: 1 });
      // B publishes only after it got A's message, so Redis sent A's echo of it to A's
      // subscriber connection before this one: had the echo been delivered, it would come first.
      await b.publish('user:7', { n: 2 });
      expect(await atA.next()).toEqual({ n: 2 });
      expect(await atB.next()).toEqual({ n: 2 });
      expect(atA.size).toBe(0);
    });

    it('publishes issued together reach another instance, every one and in order', async () => {
      const ns = `test:${randomUUID()}:`;
      const a = createRedisEventBus(redis(), redis(), silent, ns);
      const b = createRedisEventBus(redis(), redis(), silent, ns);
      const got = eventQueue<unknown>();
      await b.subscribe('group', (m) => got.push(m));
      // As a group send's wake-ups leave: in one synchronous run, so in one pipeline.
      await Promise.all(Array.from({ length: 100 }, (_, n) => a.publish('group', { n })));
      for (let n = 0; n < 100; n++) expect(await got.next()).toEqual({ n });
    });

    it('a publish Redis refuses fails its caller', async () => {
      const publisher = redis();
      const bus = createRedisEventBus(publisher, redis(), silent, `test:${randomUUID()}:`);
      await bus.publish('up', { fine: true });
      publisher.disconnect();
      await expect(bus.publish('down', { lost: true })).rejects.toThrow();
    });
  });
}
