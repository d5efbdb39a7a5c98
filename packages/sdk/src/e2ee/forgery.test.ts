// What the server, which relays every envelope and names its sender, can make up under a
// contact's name: another device's messages passed off as theirs, and their messages again.
import { isCryptoError, parsePreKeyMessage, toBase64 } from '@mvp/crypto';
import { TRPCClientError } from '@trpc/client';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  createFakeNetwork,
  decode,
  encode,
  send,
  texts,
  type FakeDevice,
} from './fakeNetwork.testing';
import { addressOf } from './payloads';

afterEach(() => vi.restoreAllMocks());

/** Alice and Bob with a session both ways, and Mallory, whom the server helps. */
async function aliceBobAndMallory() {
  const net = createFakeNetwork();
  const [a, b, m] = [
    await net.device('alice'),
    await net.device('bob'),
    await net.device('mallory'),
  ];
  const hello = await b.e2ee.pairwise.encrypt('alice', a.deviceId, encode('hello'));
  expect(decode(await a.e2ee.pairwise.decrypt('bob', b.deviceId, hello))).toBe('hello');
  const hi = await a.e2ee.pairwise.encrypt('bob', b.deviceId, encode('hi'));
  expect(decode(await b.e2ee.pairwise.decrypt('alice', a.deviceId, hi))).toBe('hi');
  const identity = (deviceId: string) => net.published.get(deviceId)!.identityKey;
  return { net, a, b, m, bobKey: identity(b.deviceId), malloryKey: identity(m.deviceId) };
}

/** The identity keys of the sessions `d` holds with a device, current first, then archived. */
async function sessionKeys(d: FakeDevice, userId: string, deviceId: string) {
  const session = await d.e2ee.store.getSession(addressOf(userId, deviceId));
  return session ? [session, ...session.archived].map((s) => toBase64(s.remote.identityKey)) : [];
}

/**
 * What Mallory sends Alice next, as a plain ratchet message: she has not heard back, so the SDK
 * still wraps it as a prekey message, but anyone holding the session can take the wrapper off.
 */
async function plainFromMallory(m: FakeDevice, a: FakeDevice, text: string) {
  return parsePreKeyMessage(await m.e2ee.pairwise.encrypt('alice', a.deviceId, encode(text)))
    .message;
}

/** What `promise` failed with; undefined when it did not. */
const failureOf = (promise: Promise<unknown>) =>
  promise.then(
    () => undefined,
    (error: unknown) => error,
  );

describe("a server passing off another device's messages as a contact's", () => {
  it('a forged prekey message whose directory refetch fails stores nothing; what the forger sends next is refused', async () => {
    const { a, b, m, bobKey } = await aliceBobAndMallory();
    const forged = await m.e2ee.pairwise.encrypt('alice', a.deviceId, encode('it is bob'));
    vi.spyOn(a.transport, 'devices').mockRejectedValue(new Error('keys.devices failed'));
    await expect(a.e2ee.pairwise.decrypt('bob', b.deviceId, forged)).rejects.toMatchObject({
      name: 'SenderCheckUnavailable',
      cause: { message: 'keys.devices failed' },
    });
    vi.restoreAllMocks();
    expect(await sessionKeys(a, 'bob', b.deviceId)).toEqual([bobKey]);

    // Mallory goes on under the session she meant to plant, in plain ratchet messages.
    const next = await plainFromMallory(m, a, 'it is still bob');
    await expect(a.e2ee.pairwise.decrypt('bob', b.deviceId, next)).rejects.toThrow();
    const real = await b.e2ee.pairwise.encrypt('alice', a.deviceId, encode('really me'));
    expect(decode(await a.e2ee.pairwise.decrypt('bob', b.deviceId, real))).toBe('really me');
  });

  it('a forged prekey message is refused before anything is stored, even when the directory answers late', async () => {
    const { a, b, m, bobKey, malloryKey } = await aliceBobAndMallory();
    const forged = await m.e2ee.pairwise.encrypt('alice', a.deviceId, encode('it is bob'));
    const { oneTimePreKeyId } = parsePreKeyMessage(forged);
    const devices = a.transport.devices.bind(a.transport);
    let answer!: () => void;
    const asked = new Promise<void>((resolve) =>
      vi.spyOn(a.transport, 'devices').mockImplementation(async (userId) => {
        resolve();
        await new Promise<void>((go) => (answer = go));
        return devices(userId);
      }),
    );
    const forging = a.e2ee.pairwise.decrypt('bob', b.deviceId, forged).then(
      () => 'read',
      (error: Error) => error.message,
    );
    await asked; // the check is waiting for the server's list
    expect(await sessionKeys(a, 'bob', b.deviceId)).toEqual([bobKey]);

    // Meanwhile Bob's real message (say, a call offer) comes, and is read once.
    const real = await b.e2ee.pairwise.encrypt('alice', a.deviceId, encode('really me'));
    const reading = a.e2ee.pairwise.decrypt('bob', b.deviceId, real);
    answer();
    expect(await forging).toMatch(/keys the directory does not list/);
    expect(decode(await reading)).toBe('really me');
    expect(await sessionKeys(a, 'bob', b.deviceId)).not.toContain(malloryKey);
    expect(await a.e2ee.store.getOneTimePreKey(oneTimePreKeyId!)).toBeDefined();
    const replay = a.e2ee.pairwise.decrypt('bob', b.deviceId, real);
    expect(isCryptoError(await failureOf(replay), 'DUPLICATE_MESSAGE')).toBe(true);
  });

  it('a session whose keys the server no longer lists for that device opens nothing, current or archived', async () => {
    const { net, a, b, m, malloryKey } = await aliceBobAndMallory();
    // The server lists Mallory's keys as Bob's phone: Alice never verified Bob, so the change
    // is told and trusted (trust on first use), and Mallory's messages read as Bob's.
    const bobs = net.published.get(b.deviceId)!;
    net.published.set(b.deviceId, {
      ...net.published.get(m.deviceId)!,
      userId: 'bob',
      deviceId: b.deviceId,
    });
    net.keysChanged('alice', 'bob', b.deviceId, 'changed');
    await net.settled();
    const first = await m.e2ee.pairwise.encrypt('alice', a.deviceId, encode('new phone'));
    expect(decode(await a.e2ee.pairwise.decrypt('bob', b.deviceId, first))).toBe('new phone');
    const plain = await plainFromMallory(m, a, 'plain');
    expect(decode(await a.e2ee.pairwise.decrypt('bob', b.deviceId, plain))).toBe('plain');

    // Bob's real keys are listed again: Mallory's session, still current, opens nothing more.
    net.published.set(b.deviceId, bobs);
    net.keysChanged('alice', 'bob', b.deviceId, 'changed');
    await net.settled();
    expect((await sessionKeys(a, 'bob', b.deviceId))[0]).toBe(malloryKey);
    const current = await plainFromMallory(m, a, 'current');
    await expect(a.e2ee.pairwise.decrypt('bob', b.deviceId, current)).rejects.toThrow(
      /keys the directory does not list/,
    );
    // Alice's next message starts a session with Bob's keys; Mallory's is archived behind it.
    const back = await a.e2ee.pairwise.encrypt('bob', b.deviceId, encode('welcome back'));
    expect(decode(await b.e2ee.pairwise.decrypt('alice', a.deviceId, back))).toBe('welcome back');
    expect(await sessionKeys(a, 'bob', b.deviceId)).toContain(malloryKey);
    const archived = await plainFromMallory(m, a, 'archived');
    await expect(a.e2ee.pairwise.decrypt('bob', b.deviceId, archived)).rejects.toThrow(
      /keys the directory does not list/,
    );
  });
});

describe("a server replaying a contact's messages", () => {
  it('a prekey message replayed after a device.keys event is refused, not read twice', async () => {
    for (const change of ['changed', 'removed'] as const) {
      const net = createFakeNetwork();
      const [a, b] = [await net.device('alice'), await net.device('bob')];
      // Alice's one-time prekeys ran out: Bob's first message takes the signed prekey only,
      // which Alice keeps for 30 days.
      net.published.get(a.deviceId)!.oneTimePrekeys.length = 0;
      const first = await b.e2ee.pairwise.encrypt('alice', a.deviceId, encode('call me'));
      expect(parsePreKeyMessage(first).oneTimePreKeyId).toBeUndefined();
      expect(decode(await a.e2ee.pairwise.decrypt('bob', b.deviceId, first))).toBe('call me');

      // Only the server sends these; Bob's keys are the same.
      net.keysChanged('alice', 'bob', b.deviceId, change);
      await net.settled();
      const replay = a.e2ee.pairwise.decrypt('bob', b.deviceId, first);
      expect(isCryptoError(await failureOf(replay), 'DUPLICATE_MESSAGE')).toBe(true);
      const next = await b.e2ee.pairwise.encrypt('alice', a.deviceId, encode('still me'));
      expect(decode(await a.e2ee.pairwise.decrypt('bob', b.deviceId, next))).toBe('still me');
    }
  });
});

describe('a sender check the server cannot answer', () => {
  it('gives the envelope up neither way: it is handed over again and read once the check can be made', async () => {
    const net = createFakeNetwork();
    const [a, b] = [await net.device('alice'), await net.device('bob')];
    net.members('g', ['alice', 'bob']);
    // Bob's first message to the group shares his key with Alice in an envelope; her check of
    // his keys meets a server that does not answer.
    vi.spyOn(a.transport, 'devices').mockRejectedValue(new Error('keys.devices failed'));
    await send(b, 'g', 'first');
    await net.settled();
    expect(texts(a)).toEqual([]);
    expect(net.failedEvents).toBeGreaterThan(0);
    vi.restoreAllMocks();
    net.retryFailed();
    await net.settled();
    expect(texts(a)).toEqual(['first']);
  });
  it('an envelope whose sender is gone for good (NOT_FOUND) is passed over, not held', async () => {
    const net = createFakeNetwork();
    const [a, b] = [await net.device('alice'), await net.device('bob')];
    net.members('g', ['alice', 'bob']);
    // Bob's account is deleted after he sent: the server answers the same for ever.
    const gone = TRPCClientError.from({
      error: { code: -32004, message: 'No such user', data: { appCode: 'NOT_FOUND' } },
    });
    vi.spyOn(a.transport, 'devices').mockRejectedValue(gone);
    await send(b, 'g', 'last words');
    await net.settled();
    expect(net.failedEvents).toBe(0);
    expect(texts(a)).toEqual([]);
    expect(a.errors.length).toBeGreaterThan(0);
  });
});
