// Trust on first use: what this device does when the server's device lists change under it.
import { describe, expect, it } from 'vitest';
import {
  createFakeNetwork,
  decode,
  encode,
  send,
  texts,
  type FakeDevice,
} from './fakeNetwork.testing';
import { isUntrustedIdentityError, type IdentityChange } from './trust';

const changesSeenBy = (d: FakeDevice) => {
  const seen: IdentityChange[] = [];
  d.e2ee.onIdentityChange((change) => void seen.push(change));
  return seen;
};

/**
 * The server (or whoever holds it) lists Mallory's keys as Bob's phone and tells Alice that
 * Bob's phone changed keys: envelopes for "Bob's phone" are then readable by Mallory alone.
 */
async function swapBobsPhone(net: ReturnType<typeof createFakeNetwork>) {
  await net.device('mallory', 'mallory-phone');
  const keys = net.published.get('mallory-phone')!;
  net.published.delete('mallory-phone');
  net.published.set('bob-phone', { ...keys, userId: 'bob', deviceId: 'bob-phone' });
  net.keysChanged('alice', 'bob', 'bob-phone', 'changed');
  await net.settled();
}

describe('trust on first use', () => {
  it("someone I never verified: a changed key is accepted and told, as Signal's safety-number notice", async () => {
    const net = createFakeNetwork();
    const [a, b] = [await net.device('alice'), await net.device('bob')];
    const seen = changesSeenBy(a);
    net.members('d', ['alice', 'bob']);
    await send(a, 'd', 'first');
    await net.settled();
    expect(seen).toEqual([]); // first use: nothing to tell
    expect(texts(b)).toEqual(['first']);

    await swapBobsPhone(net);
    await send(a, 'd', 'second');
    await net.settled();
    expect(seen).toEqual([
      { userId: 'bob', deviceId: 'bob-phone', change: 'changed', verified: false },
    ]);
    expect(await a.e2ee.isVerified('bob')).toBe(false);
  });

  it('someone I verified: a changed key stops my sends to them until I accept it, and nothing reaches the new key', async () => {
    const net = createFakeNetwork();
    const [a] = [await net.device('alice'), await net.device('bob')];
    const seen = changesSeenBy(a);
    net.members('d', ['alice', 'bob']);
    await send(a, 'd', 'first');
    await a.e2ee.markVerified('bob', 'qr', await a.e2ee.safetyNumbers('bob'));
    expect(await a.e2ee.isVerified('bob')).toBe(true);
    await net.settled();

    await swapBobsPhone(net);
    const sentBefore = a.sent.length;
    const refused = await send(a, 'd', 'secret').catch((error: unknown) => error);
    expect(isUntrustedIdentityError(refused)).toBe(true);
    expect(refused).toMatchObject({
      code: 'UNTRUSTED_IDENTITY',
      changes: [{ userId: 'bob', deviceId: 'bob-phone', change: 'changed', verified: true }],
    });
    // Refused again while nothing changed: told once, not once per attempt.
    await expect(send(a, 'd', 'secret')).rejects.toThrow(/verified user/);
    expect(seen).toHaveLength(1);
    expect(a.sent.slice(sentBefore)).toEqual([]); // no key share went to Mallory's key
    // A call's pairwise bytes are refused the same way.
    await expect(a.e2ee.pairwise.encrypt('bob', 'bob-phone', encode('sdp'))).rejects.toThrow(
      /verified user/,
    );

    // "Send anyway": the new keys are trusted, and Bob is no longer verified.
    await a.e2ee.trustIdentities('bob');
    expect(await a.e2ee.isVerified('bob')).toBe(false);
    await send(a, 'd', 'after accepting');
    expect(a.sent.slice(sentBefore).map((e) => e.deviceId)).toEqual(['bob-phone']);
  });

  it('someone I verified: a device added since stops my sends (a ghost device); verifying again lets them through', async () => {
    const net = createFakeNetwork();
    const [a, b] = [await net.device('alice'), await net.device('bob')];
    const seen = changesSeenBy(a);
    net.members('g', ['alice', 'bob']);
    await a.e2ee.markVerified('bob', 'manual', await a.e2ee.safetyNumbers('bob'));
    await send(a, 'g', 'before');
    await net.settled();

    const ghost = await net.device('bob', 'bob-ghost');
    net.keysChanged('alice', 'bob', 'bob-ghost', 'added');
    await net.settled();
    await expect(send(a, 'g', 'not for the ghost')).rejects.toMatchObject({
      changes: [{ userId: 'bob', deviceId: 'bob-ghost', change: 'added', verified: true }],
    });
    expect(seen).toEqual([
      { userId: 'bob', deviceId: 'bob-ghost', change: 'added', verified: true },
    ]);

    // Alice compares the new device's number with Bob and verifies again.
    await a.e2ee.markVerified('bob', 'qr', await a.e2ee.safetyNumbers('bob'));
    expect(await a.e2ee.isVerified('bob')).toBe(true);
    await send(a, 'g', 'both devices');
    await net.settled();
    expect(texts(b)).toEqual(['before', 'both devices']);
    expect(texts(ghost)).toEqual(['both devices']);
  });

  it('someone I never verified: a new device is told and trusted; a device that left is remembered, keys and all', async () => {
    const net = createFakeNetwork();
    const [a, b] = [await net.device('alice'), await net.device('bob')];
    const seen = changesSeenBy(a);
    net.members('g', ['alice', 'bob']);
    await send(a, 'g', 'one');
    await net.settled();
    const laptop = await net.device('bob', 'bob-laptop');
    net.keysChanged('alice', 'bob', 'bob-laptop', 'added');
    await net.settled();
    await send(a, 'g', 'two');
    await net.settled();
    expect(seen).toEqual([
      { userId: 'bob', deviceId: 'bob-laptop', change: 'added', verified: false },
    ]);
    expect([texts(b), texts(laptop)]).toEqual([['one', 'two'], ['two']]);
    expect((await a.e2ee.store.getTrust('bob'))!.devices.map((d) => d.deviceId).sort()).toEqual([
      'bob-laptop',
      'bob-phone',
    ]);

    net.published.delete('bob-laptop');
    net.keysChanged('alice', 'bob', 'bob-laptop', 'removed');
    await net.settled();
    await send(a, 'g', 'three');
    await net.settled();
    // Listed first, then remembered: the laptop coming back with these keys is no change.
    expect((await a.e2ee.store.getTrust('bob'))!.devices.map((d) => d.deviceId)).toEqual([
      'bob-phone',
      'bob-laptop',
    ]);
  });

  it("an app's throwing identity handler does not stop the send; it is reported", async () => {
    const net = createFakeNetwork();
    const [a] = [await net.device('alice'), await net.device('bob')];
    a.e2ee.onIdentityChange(() => {
      throw new Error('app bug');
    });
    net.members('d', ['alice', 'bob']);
    await send(a, 'd', 'one');
    await net.settled();
    await swapBobsPhone(net);
    const sent = await send(a, 'd', 'two');
    await net.settled();
    expect(sent.seq).toBe(2);
    // (Bob's old phone, still running here, also asks for the key that replaced the one it held,
    // and is refused: its keys are not listed any more. That is reported too.)
    expect(a.errors).toContainEqual(new Error('app bug'));
  });

  it('receiving: a device the server slips into a verified user is refused and told, not read', async () => {
    const net = createFakeNetwork();
    const [a] = [await net.device('alice'), await net.device('bob')];
    const seen = changesSeenBy(a);
    net.members('d', ['alice', 'bob']);
    await send(a, 'd', 'hello');
    await a.e2ee.markVerified('bob', 'qr', await a.e2ee.safetyNumbers('bob'));
    await net.settled();
    // A ghost device of "Bob" (keys the server holds) writes to Alice; nobody told her of it.
    const ghost = await net.device('bob', 'bob-ghost');
    await ghost.e2ee.pairwise
      .encrypt('alice', a.deviceId, encode('send me your password'))
      .then((bytes) =>
        net.event('alice', {
          type: 'envelope',
          envelope: {
            id: 'ghost',
            senderId: 'bob',
            senderDeviceId: 'bob-ghost',
            contentType: 'mvp/e2ee-device',
            ciphertext: bytes,
            sentAt: new Date(0).toISOString(),
          },
        }),
      );
    await net.settled();
    expect(seen).toEqual([
      { userId: 'bob', deviceId: 'bob-ghost', change: 'added', verified: true },
    ]);
    expect(a.errors.some(isUntrustedIdentityError)).toBe(true);
    expect(await a.e2ee.store.getSession(`bob:bob-ghost`)).toBeUndefined();
    // Bob's devices are not the ones compared any more: not shown as verified, and nothing
    // was accepted (the record still says verified, so sends to him stop).
    expect(await a.e2ee.isVerified('bob')).toBe(false);
    expect((await a.e2ee.store.getTrust('bob'))?.verified).toBe(true);
  });

  it('receiving: a new device of someone I never verified is told when its first message arrives', async () => {
    const net = createFakeNetwork();
    const [a] = [await net.device('alice'), await net.device('bob')];
    const seen = changesSeenBy(a);
    net.members('d', ['alice', 'bob']);
    await send(a, 'd', 'hello');
    await net.settled();
    const laptop = await net.device('bob', 'bob-laptop');
    const bytes = await laptop.e2ee.pairwise.encrypt('alice', a.deviceId, encode('from my laptop'));
    expect(decode(await a.e2ee.pairwise.decrypt('bob', 'bob-laptop', bytes))).toBe(
      'from my laptop',
    );
    expect(seen).toEqual([
      { userId: 'bob', deviceId: 'bob-laptop', change: 'added', verified: false },
    ]);
  });

  it('a device added to my own account is told to me, with my own user id', async () => {
    const net = createFakeNetwork();
    const [a] = [await net.device('alice'), await net.device('bob')];
    const seen = changesSeenBy(a);
    net.members('d', ['alice', 'bob']);
    await send(a, 'd', 'one');
    await net.settled();
    const second = await net.device('alice', 'alice-laptop');
    net.keysChanged('alice', 'alice', 'alice-laptop', 'added');
    await net.settled();
    await send(a, 'd', 'two');
    await net.settled();
    expect(seen).toEqual([
      { userId: 'alice', deviceId: 'alice-laptop', change: 'added', verified: false },
    ]);
    expect(texts(second)).toEqual(['two']);
  });

  it('markVerified takes exactly the numbers compared: a list that changed since is refused', async () => {
    const net = createFakeNetwork();
    const [a] = [await net.device('alice'), await net.device('bob')];
    const compared = await a.e2ee.safetyNumbers('bob');
    await net.device('bob', 'bob-ghost'); // listed after the numbers were shown
    await expect(a.e2ee.markVerified('bob', 'qr', compared)).rejects.toThrow(/changed since/);
    expect(await a.e2ee.isVerified('bob')).toBe(false);
    await expect(a.e2ee.markVerified('bob', 'qr', [])).rejects.toThrow(/changed since/);
  });

  it('trustIdentities accepts only changes I was told of; one added since is told and refused first', async () => {
    const net = createFakeNetwork();
    const [a] = [await net.device('alice'), await net.device('bob')];
    const seen = changesSeenBy(a);
    net.members('d', ['alice', 'bob']);
    await send(a, 'd', 'one');
    await a.e2ee.markVerified('bob', 'qr', await a.e2ee.safetyNumbers('bob'));
    await swapBobsPhone(net);
    await expect(send(a, 'd', 'two')).rejects.toThrow(/verified user/);
    // Before Alice taps "send anyway", the server lists one more device, and says so.
    await net.device('bob', 'bob-ghost');
    net.keysChanged('alice', 'bob', 'bob-ghost', 'added');
    await net.settled();
    await expect(a.e2ee.trustIdentities('bob')).rejects.toMatchObject({
      changes: [{ deviceId: 'bob-ghost', change: 'added' }],
    });
    expect(seen.map((c) => c.deviceId)).toEqual(['bob-phone', 'bob-ghost']);
    expect(await a.e2ee.isVerified('bob')).toBe(false); // his keys changed since
    expect((await a.e2ee.store.getTrust('bob'))?.verified).toBe(true); // nothing accepted
    // Now told of both: accepted.
    await a.e2ee.trustIdentities('bob');
    expect(await a.e2ee.isVerified('bob')).toBe(false);
    expect((await send(a, 'd', 'three')).seq).toBe(2);
  });

  it('a verified user whose device comes back with the same keys (signed in again) is no change', async () => {
    const net = createFakeNetwork();
    const [a, b] = [await net.device('alice'), await net.device('bob')];
    const laptop = await net.device('bob', 'bob-laptop');
    const seen = changesSeenBy(a);
    net.members('d', ['alice', 'bob']);
    await send(a, 'd', 'one');
    await a.e2ee.markVerified('bob', 'qr', await a.e2ee.safetyNumbers('bob'));
    await net.settled();
    const keys = net.published.get(laptop.deviceId)!;
    net.published.delete(laptop.deviceId); // its session expired: not listed
    net.keysChanged('alice', 'bob', laptop.deviceId, 'removed');
    await net.settled();
    await send(a, 'd', 'while away'); // a list without the laptop passes the check meanwhile
    net.published.set(laptop.deviceId, keys); // signed in again, same keys
    net.keysChanged('alice', 'bob', laptop.deviceId, 'added');
    await net.settled();
    await send(a, 'd', 'two');
    await net.settled();
    expect(seen).toEqual([]);
    expect(texts(b)).toEqual(['one', 'while away', 'two']);
    expect(texts(laptop)).toEqual(['one', 'two']);
  });
});
