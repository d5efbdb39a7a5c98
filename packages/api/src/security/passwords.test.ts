import type * as Argon2 from 'argon2';
import { beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { createPasswordHasher, MIN_PASSWORD_PARAMS, type PasswordParams } from './passwords';

// Pass-through spies on the real argon2: count calls and how many run at once.
const calls = vi.hoisted(() => ({ hash: 0, verify: 0, inFlight: 0, maxInFlight: 0 }));
vi.mock('argon2', async (importOriginal) => {
  const real = await importOriginal<typeof Argon2>();
  const track = async <T>(name: 'hash' | 'verify', run: () => Promise<T>): Promise<T> => {
    calls[name] += 1;
    calls.inFlight += 1;
    calls.maxInFlight = Math.max(calls.maxInFlight, calls.inFlight);
    try {
      return await run();
    } finally {
      calls.inFlight -= 1;
    }
  };
  return {
    ...real,
    hash: (...args: Parameters<typeof real.hash>) => track('hash', () => real.hash(...args)),
    verify: (...args: Parameters<typeof real.verify>) =>
      track('verify', () => real.verify(...args)),
  };
});

const MIN: PasswordParams = { memoryCost: 19_456, timeCost: 2, parallelism: 1 };

beforeEach(() => {
  Object.assign(calls, { hash: 0, verify: 0, inFlight: 0, maxInFlight: 0 });
});

describe('createPasswordHasher', () => {
  const hasher = createPasswordHasher(MIN);
  let stored: string;
  beforeAll(async () => {
    stored = await hasher.hash('correct horse battery staple');
  });

  it('hashes with argon2id at the configured params and verifies', async () => {
    expect(stored).toMatch(/^\$argon2id\$v=19\$m=19456,t=2,p=1\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$/);
    expect(await hasher.verify(stored, 'correct horse battery staple')).toBe(true);
    expect(await hasher.verify(stored, 'correct horse battery stapl')).toBe(false);
    expect(await hasher.verify(stored, '')).toBe(false);
  });

  it('salts: the same password hashes differently', async () => {
    const again = await hasher.hash('correct horse battery staple');
    expect(again).not.toBe(stored);
    expect(await hasher.verify(again, 'correct horse battery staple')).toBe(true);
  });

  it('returns false, never throws, for malformed, foreign or tampered hashes', async () => {
    const [, , , params, salt, digest] = stored.split('$');
    const flipped = digest!.replace(/^./, (c) => (c === 'A' ? 'B' : 'A'));
    const bad = [
      '',
      'garbage',
      '$2b$12$abcdefghijklmnopqrstuuJ1Zp1nG5Q6Xq4G4eY0dJ2t9wGkQ3sGq', // bcrypt
      stored.replace('$argon2id$', '$argon2i$'), // weaker variant: not accepted
      stored.replace('$v=19$', '$v=16$'),
      stored.slice(0, -5),
      `$argon2id$v=19$${params}$${salt}$${flipped}`,
      // A forged hash asking for 4 TiB of memory must not reach argon2 at all.
      stored.replace('m=19456', 'm=4294967295'),
      null as unknown as string,
    ];
    for (const hash of bad) {
      await expect(hasher.verify(hash, 'correct horse battery staple')).resolves.toBe(false);
    }
    // Only the truncated and the tampered digest (well-formed, in bounds) reached argon2.
    expect(calls.verify).toBe(2);
    await expect(hasher.verify(stored, 42 as unknown as string)).resolves.toBe(false);
  });

  it('verifyDummy returns false, even for the dummy password, and hashes the dummy once, lazily', async () => {
    const fresh = createPasswordHasher(MIN);
    expect(calls.hash).toBe(0);
    await expect(fresh.verifyDummy('anything')).resolves.toBe(false);
    await expect(fresh.verifyDummy('dummy password for unknown accounts')).resolves.toBe(false);
    expect(calls.hash).toBe(1);
    // It did the same work as a real verify, which is the point.
    expect(calls.verify).toBe(2);
  });

  it('needsRehash is true only when the stored params are weaker, or the hash is unreadable', () => {
    expect(hasher.needsRehash(stored)).toBe(false);
    const stronger = stored.replace('m=19456,t=2,p=1', 'm=65536,t=3,p=2');
    expect(hasher.needsRehash(stronger)).toBe(false);
    for (const next of [
      { ...MIN, memoryCost: 19_457 },
      { ...MIN, timeCost: 3 },
      { ...MIN, parallelism: 2 },
    ]) {
      expect(createPasswordHasher(next).needsRehash(stored)).toBe(true);
    }
    expect(hasher.needsRehash('garbage')).toBe(true);
    expect(hasher.needsRehash(stored.replace('$argon2id$', '$argon2i$'))).toBe(true);
  });

  it('caps concurrent argon2 operations at the configured concurrency', async () => {
    const limited = createPasswordHasher(MIN, { concurrency: 2 });
    const results = await Promise.all([
      limited.hash('one two three four'),
      limited.verify(stored, 'correct horse battery staple'),
      limited.hash('five six seven eight'),
    ]);
    expect(results[1]).toBe(true);
    expect(calls.maxInFlight).toBe(2);
  });

  it.each<[string, PasswordParams, RegExp]>([
    ['memory below OWASP minimum', { ...MIN, memoryCost: 19_455 }, /memoryCost 19455 is below/],
    ['one iteration', { ...MIN, timeCost: 1 }, /timeCost 1 is below/],
    ['zero lanes', { ...MIN, parallelism: 0 }, /parallelism 0 is below/],
    ['fractional memory', { ...MIN, memoryCost: 19_456.5 }, /integer/],
    ['NaN', { ...MIN, timeCost: Number.NaN }, /integer/],
    ['absurd memory', { ...MIN, memoryCost: 2 ** 31 }, /above/],
  ])('refuses weak or invalid params: %s', (_name, params, message) => {
    expect(() => createPasswordHasher(params)).toThrow(message);
  });

  it('refuses a non-positive concurrency and exports the OWASP minimum', () => {
    expect(() => createPasswordHasher(MIN, { concurrency: 0 })).toThrow(/concurrency/);
    expect(() => createPasswordHasher(MIN, { concurrency: 1.5 })).toThrow(/concurrency/);
    expect(MIN_PASSWORD_PARAMS).toEqual(MIN);
  });
});
