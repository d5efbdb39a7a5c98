import {
  DEFAULT_SENDER_KEY_LIMITS,
  encryptGroup,
  encryptToDevice,
  MAX_INBOUND_SENDER_KEYS,
  messageType,
  outboundSenderKey,
  parseSenderKeyMessage,
  rotateOutboundSenderKey,
  createMemoryStore,
  processSenderKeyDistribution,
  toBase64,
  WireType,
} from '@mvp/crypto';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  createFakeNetwork,
  decode,
  edit,
  encode,
  passTime,
  send,
  sendPayload,
  texts,
} from './fakeNetwork.testing';
import { createDirectory } from './directory';
import { MAX_WAITING } from './inbound';
import { KEY_ANSWER_EVERY_MS, createOutbound } from './outbound';
import { createKeyedQueue } from './serial';
import { createTrust } from './trust';
import { base64ToBytes, bytesToBase64 } from '../base64';
import { E2EE_DEVICE_CONTENT_TYPE, addressOf, encodeDevicePayload } from './payloads';

const keyIdOf = (ciphertext: Uint8Array | null) =>
  toBase64(parseSenderKeyMessage(ciphertext!).keyId);

afterEach(() => vi.restoreAllMocks()); // `passTime`

describe('keyed queue', () => {
  it('runs tasks of one key one at a time, in order, even after a failure', async () => {
    const queue = createKeyedQueue();
    const log: string[] = [];
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    const first = queue('a', async () => {
      log.push('a1 start');
      await gate;
      log.push('a1 end');
      throw new Error('a1 failed');
    });
    const second = queue('a', async () => void log.push('a2'));
    const other = queue('b', async () => void log.push('b1'));
    await other;
    expect(log).toEqual(['a1 start', 'b1']); // another key does not wait
    open();
    await expect(first).rejects.toThrow('a1 failed');
    await second;
    expect(log).toEqual(['a1 start', 'b1', 'a1 end', 'a2']);
  });
});

describe('e2ee over a fake server', () => {
  it('publishes keys once, with ids in the server range, and reads messages in a group', async () => {
    const net = createFakeNetwork();
    const [a, b, c] = [
      await net.device('alice'),
      await net.device('bob'),
      await net.device('carol'),
    ];
    const keys = net.published.get(a.deviceId)!;
    expect(keys.oneTimePrekeys).toHaveLength(100);
    for (const k of [...keys.oneTimePrekeys, keys.signedPrekey])
      expect(k.keyId).toBeLessThanOrEqual(2 ** 31 - 1);
    await a.e2ee.setup();
    expect(net.published.get(a.deviceId)!.oneTimePrekeys).toHaveLength(100);

    net.members('g', ['alice', 'bob', 'carol']);
    const stored = await send(a, 'g', 'hello');
    expect(stored.contentType).toBe('mvp/e2ee');
    await send(b, 'g', 'hi');
    await net.settled();
    for (const d of [a, b, c]) expect(texts(d)).toEqual(['hello', 'hi']);
    expect([a, b, c].flatMap((d) => [...d.unreadable, ...d.errors])).toEqual([]);
  });

  it('rotates the sender key when a member leaves (event) or is gone (observed at send)', async () => {
    const net = createFakeNetwork();
    const [a, b, c] = [
      await net.device('alice'),
      await net.device('bob'),
      await net.device('carol'),
    ];
    net.members('g', ['alice', 'bob', 'carol']);
    const first = await send(a, 'g', 'one');
    const again = await send(a, 'g', 'two');
    expect(keyIdOf(again.ciphertext)).toBe(keyIdOf(first.ciphertext)); // no change, no rotation

    // Carol leaves; Alice hears of it on her stream.
    net.members('g', ['alice', 'bob']);
    net.event('alice', { type: 'member.left', conversationId: 'g', userId: 'carol' });
    await net.settled();
    a.sent.length = 0;
    const after = await send(a, 'g', 'after carol left');
    expect(keyIdOf(after.ciphertext)).not.toBe(keyIdOf(first.ciphertext));
    expect(a.sent.map((e) => e.userId)).toEqual(['bob']); // the new key went to Bob only
    expect(await c.e2ee.decrypt(after)).toEqual({ ok: false, reason: 'missing_key' });
    await net.settled();
    expect(texts(b)).toEqual(['one', 'two', 'after carol left']);
    expect(texts(c)).toEqual(['one', 'two']);
  });

  it('leaving retires the keys held for the conversation; back in, the new keys read', async () => {
    const net = createFakeNetwork();
    const [a, b] = [await net.device('alice'), await net.device('bob')];
    await net.device('carol');
    net.members('g', ['alice', 'bob', 'carol']);
    net.members('other', ['alice', 'bob']);
    const read = await send(a, 'g', 'read');
    await send(a, 'other', 'elsewhere');
    await net.settled();
    const aliceAt = addressOf('alice', a.deviceId);
    const held = (conversationId: string, message: { ciphertext: Uint8Array | null }) =>
      b.e2ee.store.getInboundSenderKey(conversationId, aliceAt, keyIdOf(message.ciphertext));
    const before = await held('g', read);
    expect(before?.retired).toBeUndefined();

    // Bob leaves `g`; Alice hears of it and rotates.
    net.members('g', ['alice', 'carol']);
    net.event('bob', { type: 'conversation.left', conversationId: 'g', reason: 'left' });
    net.event('alice', { type: 'member.left', conversationId: 'g', userId: 'bob' });
    await net.settled();
    for (const sender of [aliceAt, addressOf('bob', b.deviceId)])
      for (const id of (await b.e2ee.store.inboundSenderKeyIds!('g', sender)) ?? [])
        expect((await b.e2ee.store.getInboundSenderKey('g', sender, id))?.retired).toBe(true);
    expect((await held('other', read))?.retired).toBeUndefined(); // only that conversation's
    // A replay of what was read is neither read again nor asked for.
    const replay = { ...read, id: `${read.id}-again`, seq: read.seq + 100 };
    b.sent.length = 0;
    net.event('bob', { type: 'message.new', message: replay });
    await net.settled();
    expect(b.unreadable).toEqual([{ message: replay, reason: 'decrypt_failed' }]);
    expect([texts(b), b.sent]).toEqual([['read', 'elsewhere'], []]);

    // Added back: Alice's new key reaches him and reads.
    net.members('g', ['alice', 'bob', 'carol']);
    await send(a, 'g', 'welcome back');
    await net.settled();
    expect(texts(b)).toEqual(['read', 'elsewhere', 'welcome back']);
    expect(b.errors).toEqual([]);
  });

  it("keeps a sender's newest keys whole: a replay under a retired key is neither read again nor asked for", async () => {
    const net = createFakeNetwork();
    const leavers = Array.from({ length: MAX_INBOUND_SENDER_KEYS }, (_, i) => `leaver${i}`);
    const [a, b] = [await net.device('alice'), await net.device('bob')];
    for (const userId of leavers) await net.device(userId);
    net.members('g', ['alice', 'bob', ...leavers]);
    const first = await send(a, 'g', 'first');
    await net.settled();
    // One leaves before each of Alice's next sends: each goes under a new key.
    for (const [i, userId] of leavers.entries()) {
      net.members('g', ['alice', 'bob', ...leavers.slice(i + 1)]);
      net.event('alice', { type: 'member.left', conversationId: 'g', userId });
      await net.settled();
      await send(a, 'g', `after ${userId} left`);
      await net.settled();
    }
    const key = await b.e2ee.store.getInboundSenderKey(
      'g',
      addressOf('alice', a.deviceId),
      keyIdOf(first.ciphertext),
    );
    expect([key?.retired, key?.chainKey.length]).toEqual([true, 0]);

    // The server hands Bob the first message's bytes again as a new message: nothing shows,
    // nothing is asked of Alice.
    a.sent.length = 0;
    b.sent.length = 0;
    const replay = { ...first, id: `${first.id}-again`, seq: first.seq + 100 };
    net.event('bob', { type: 'message.new', message: replay });
    await net.settled();
    expect(texts(b)).toEqual(['first', ...leavers.map((userId) => `after ${userId} left`)]);
    expect([b.sent, a.sent, b.errors]).toEqual([[], [], []]);
  });

  it("a sender's current key retired by shares delivered out of order comes back when its next message asks for it", async () => {
    const net = createFakeNetwork();
    const [a, b] = [await net.device('alice'), await net.device('bob')];
    net.members('g', ['alice', 'bob']);
    await send(a, 'g', 'one');
    await net.settled();
    // The server delivers Bob, after Alice's current key, five shares of keys made before it
    // (Alice's held back by the server; made up here in a spare store, sealed by Alice).
    const spare = createMemoryStore();
    for (let i = 0; i < MAX_INBOUND_SENDER_KEYS; i++) {
      const distribution = await rotateOutboundSenderKey(spare, 'g');
      await sendPayload(a, b, { type: 'sender-key', conversationId: 'g', distribution });
    }
    await net.settled();
    const current = keyIdOf((await send(a, 'g', 'probe')).ciphertext);
    await net.settled();
    // The probe found the key retired: Bob asked for it as it is now, got it back, and had the
    // probe itself sent again as content. What Alice sends next reads at once.
    const held = await b.e2ee.store.getInboundSenderKey(
      'g',
      addressOf('alice', a.deviceId),
      current,
    );
    expect(held?.retired).toBeUndefined();
    await send(a, 'g', 'two');
    await net.settled();
    expect(texts(b)).toEqual(['one', 'probe', 'two']);
    expect(b.read.map((m) => m.late)).toEqual([false, true, false]);
    expect(b.errors).toEqual([]);
  });

  it('rotates when a send finds a key holder gone without any event', async () => {
    const net = createFakeNetwork();
    const [a, b, c] = [
      await net.device('alice'),
      await net.device('bob'),
      await net.device('carol'),
    ];
    net.members('g', ['alice', 'bob', 'carol']);
    const before = await send(b, 'g', 'bob before');
    net.members('g', ['alice', 'bob']); // Carol was removed; Bob's stream has not told him
    const after = await send(b, 'g', 'bob after');
    expect(keyIdOf(after.ciphertext)).not.toBe(keyIdOf(before.ciphertext));
    await net.settled();
    expect(texts(a)).toEqual(['bob before', 'bob after']);
    expect(texts(c)).toEqual(['bob before']);
    expect(await c.e2ee.decrypt(after)).toEqual({ ok: false, reason: 'missing_key' });
  });

  it('an app handler that throws on one late message does not keep the others waiting for the key from it', async () => {
    const net = createFakeNetwork();
    const [a, b] = [await net.device('alice'), await net.device('bob')];
    net.members('d', ['alice', 'bob']);
    net.lose((e) => !(e.sender.userId === 'alice' && e.userId === 'bob'));
    const first = await send(a, 'd', 'first');
    await send(a, 'd', 'second');
    await net.settled();
    let failOnce = true;
    b.e2ee.onMessage(() => {
      if (!failOnce) return;
      failOnce = false;
      throw new Error('app busy');
    });
    net.lose(() => true);
    passTime(KEY_ANSWER_EVERY_MS);
    await b.e2ee.retry(first);
    await net.settled();
    expect(texts(b)).toEqual(['first', 'second']); // handed over, the first one's handler threw
    expect(b.errors.map((e) => (e as Error).message)).toEqual(['app busy']);
    // The app's retry hands the first over again.
    expect(await b.e2ee.retry(first)).toBe(true);
    expect(texts(b)).toEqual(['first', 'second', 'first']);
  });

  it('reports a message whose key was lost, asks the sender, and delivers it late', async () => {
    const net = createFakeNetwork();
    const [a, b] = [await net.device('alice'), await net.device('bob')];
    net.members('d', ['alice', 'bob']);
    net.lose((e) => !(e.sender.userId === 'alice' && e.userId === 'bob'));
    const missed = await send(a, 'd', 'lost key');
    await net.settled();
    expect(b.unreadable).toEqual([{ message: missed, reason: 'missing_key' }]);
    expect(texts(b)).toEqual([]);

    net.lose(() => true);
    // Bob's request already went out (and was lost with the rest): his retry asks again.
    passTime(KEY_ANSWER_EVERY_MS); // the first answer was lost: asked again later
    expect(await b.e2ee.retry(missed)).toBe(false);
    await net.settled();
    expect(b.read).toMatchObject([{ message: { id: missed.id }, late: true }]);
    expect(texts(b)).toEqual(['lost key']);
    expect(b.sent.at(-1)).toMatchObject({ userId: 'alice', contentType: 'mvp/e2ee-device' });
  });

  it("a new device of someone's costs only its own one-time prekey, not the others'", async () => {
    const net = createFakeNetwork();
    const [a] = [await net.device('alice'), await net.device('bob')];
    net.members('d', ['alice', 'bob']);
    await send(a, 'd', 'to the phone'); // a session with Bob's phone
    await net.settled();
    await net.device('bob', 'bob-tablet');
    const phoneKeys = net.published.get('bob-phone')!.oneTimePrekeys.length;
    const tabletKeys = net.published.get('bob-tablet')!.oneTimePrekeys.length;
    const directory = createDirectory({
      store: a.e2ee.store,
      transport: a.transport,
      queue: createKeyedQueue(),
      trust: createTrust({ store: a.e2ee.store, announce: () => {} }),
      report: (error) => {
        throw error;
      },
    });
    const ready = await directory.ensureSessions('bob', await directory.devicesOf('bob'));
    expect(ready.map((d) => d.deviceId).sort()).toEqual(['bob-phone', 'bob-tablet']);
    expect(net.published.get('bob-phone')!.oneTimePrekeys).toHaveLength(phoneKeys);
    expect(net.published.get('bob-tablet')!.oneTimePrekeys).toHaveLength(tabletKeys - 1);
  });

  it("a first send to a group claims every member's bundle in one call, not one call each", async () => {
    const net = createFakeNetwork();
    const [a, ...others] = [
      await net.device('alice'),
      await net.device('bob'),
      await net.device('carol'),
      await net.device('dan'),
      await net.device('erin'),
    ];
    const laptop = await net.device('bob', 'bob-laptop');
    net.members('g', ['alice', 'bob', 'carol', 'dan', 'erin']);
    await send(a, 'g', 'hello all');
    await net.settled();
    expect(net.claimCalls).toEqual({ single: 0, many: 1 });
    for (const d of [...others, laptop]) expect(texts(d)).toEqual(['hello all']);
  });

  it('a batch claim refused past its waits falls back to claims user by user', async () => {
    const net = createFakeNetwork();
    const [a, b, c] = [
      await net.device('alice'),
      await net.device('bob'),
      await net.device('carol'),
    ];
    net.members('g', ['alice', 'bob', 'carol']);
    net.refuseClaims(5); // every wait of the batch call
    await send(a, 'g', 'still sent');
    await net.settled();
    expect([texts(b), texts(c)]).toEqual([['still sent'], ['still sent']]);
    expect(net.claimCalls).toEqual({ single: 2, many: 5 });
    expect(a.errors).toHaveLength(1); // the batch's refusal, reported
  });

  it('a first send that meets the claim rate limit waits it out instead of failing', async () => {
    const net = createFakeNetwork();
    const [a, b, c] = [
      await net.device('alice'),
      await net.device('bob'),
      await net.device('carol'),
    ];
    net.members('g', ['alice', 'bob', 'carol']);
    net.refuseClaims(2);
    await send(a, 'g', 'to a big group');
    await net.settled();
    expect([texts(b), texts(c)]).toEqual([['to a big group'], ['to a big group']]);
  });

  /** Alice, and Bob on his phone and his laptop, in group g: both of Bob's read Alice's first. */
  async function bobsLaptopInGroup() {
    const net = createFakeNetwork();
    const [a, b] = [await net.device('alice'), await net.device('bob')];
    const laptop = await net.device('bob', 'bob-laptop');
    net.members('g', ['alice', 'bob']);
    const before = await send(a, 'g', 'both of bob');
    await net.settled();
    expect([texts(b), texts(laptop)]).toEqual([['both of bob'], ['both of bob']]);
    /** Alice's next send is under a new key: Bob's phone reads it, the laptop cannot. */
    const leftOut = async () => {
      const after = await send(a, 'g', 'phone only');
      await net.settled();
      expect(keyIdOf(after.ciphertext)).not.toBe(keyIdOf(before.ciphertext));
      expect(texts(b)).toEqual(['both of bob', 'phone only']);
      expect(await laptop.e2ee.decrypt(after)).toEqual({ ok: false, reason: 'missing_key' });
    };
    return { net, a, leftOut };
  }

  it('rotates the key a revoked device held before the next send', async () => {
    const { net, leftOut } = await bobsLaptopInGroup();
    // Bob revokes the laptop (stolen): it leaves the directory, and Alice is told.
    const identityKey = net.published.get('bob-laptop')!.identityKey;
    net.published.delete('bob-laptop');
    net.event('alice', {
      type: 'device.keys',
      userId: 'bob',
      deviceId: 'bob-laptop',
      identityKey,
      change: 'removed',
      verificationLost: false,
    });
    await net.settled();
    await leftOut();
  });

  it('rotates the key a revoked device held, though its session was reset or its keys changed first', async () => {
    const { net, leftOut } = await bobsLaptopInGroup();
    // The thief of the laptop makes Alice forget it had the key (a changed-keys notice; one
    // bad message does the same), then Bob revokes it.
    net.keysChanged('alice', 'bob', 'bob-laptop', 'changed');
    await net.settled();
    net.keysChanged('alice', 'bob', 'bob-laptop', 'removed');
    net.published.delete('bob-laptop');
    await net.settled();
    await leftOut();
  });

  it('a removal the stream skipped (a resync) still rotates the key before the next send', async () => {
    const { net, a, leftOut } = await bobsLaptopInGroup();
    net.published.delete('bob-laptop'); // revoked; the event is lost to Alice's resync
    net.resync(a.deviceId);
    await leftOut();
  });

  it('a copy of a sender key too far behind asks for the chain as it is now, and reads on from there', async () => {
    const net = createFakeNetwork();
    const [a, b] = [await net.device('alice'), await net.device('bob')];
    net.members('g', ['alice', 'bob']);
    await send(a, 'g', 'first');
    await net.settled();
    // More messages than a copy derives in one step go by that Bob never sees (say his app
    // started cold after a busy month: they are only in history).
    for (let i = 0; i <= DEFAULT_SENDER_KEY_LIMITS.maxForward; i++)
      await encryptGroup(a.e2ee.store, 'g', encode('unseen'));
    const far = await send(a, 'g', 'far ahead');
    await net.settled();
    expect(b.unreadable.map((u) => [u.message.id, u.reason])).toEqual([
      [far.id, 'missing_key'],
      [far.id, 'decrypt_failed'], // Bob's copy moved past it: that one is lost to him
    ]);
    expect(b.sent.at(-1)).toMatchObject({ userId: 'alice', contentType: 'mvp/e2ee-device' });
    // The one Bob's copy moved past came again as content from Alice's send log.
    expect(b.read.map((m) => [decode(m.body), m.message.id, m.late])).toEqual([
      ['first', expect.any(String), false],
      ['far ahead', far.id, true],
    ]);
    await send(a, 'g', 'next');
    await net.settled();
    expect(texts(b)).toEqual(['first', 'far ahead', 'next']);
    expect(b.errors).toEqual([]);
  });

  it('a key share a stranger made up (not stamped with the conversation) is reported, not kept', async () => {
    const net = createFakeNetwork();
    const [, b, m] = [
      await net.device('alice'),
      await net.device('bob'),
      await net.device('mallory'),
    ];
    net.members('g', ['alice', 'bob']);
    // Mallory, not a member, starts a session with Bob and shares a key "for g" with him.
    const queue = createKeyedQueue();
    const directory = createDirectory({
      store: m.e2ee.store,
      transport: m.transport,
      queue,
      trust: createTrust({ store: m.e2ee.store, announce: () => {} }),
      report: () => {},
    });
    await directory.ensureSessions('bob', await directory.devicesOf('bob'));
    const { distribution } = await outboundSenderKey(m.e2ee.store, 'g');
    const share = encodeDevicePayload({ type: 'sender-key', conversationId: 'g', distribution });
    const envelope = async () => ({
      userId: 'bob',
      deviceId: b.deviceId,
      contentType: E2EE_DEVICE_CONTENT_TYPE,
      ciphertext: bytesToBase64(
        await encryptToDevice(m.e2ee.store, addressOf('bob', b.deviceId), share),
      ),
    });
    // Stamped, the server refuses her: she is not in g.
    await expect(m.transport.sendToDevices([await envelope()], false, 'g')).rejects.toThrow(
      'NOT_FOUND',
    );
    // Unstamped, it reaches Bob, who does not keep it.
    await m.transport.sendToDevices([await envelope()], false);
    await net.settled();
    const keyId = toBase64(processSenderKeyDistribution(distribution).keyId);
    expect(
      await b.e2ee.store.getInboundSenderKey('g', addressOf('mallory', m.deviceId), keyId),
    ).toBeUndefined();
    expect(b.errors.map((e) => (e as Error).message)).toEqual([
      expect.stringContaining('not stamped with its conversation'),
    ]);
  });

  it('one unreadable envelope does not cost the session: what was sent under it still reads, and my next message starts a new one', async () => {
    const net = createFakeNetwork();
    const [a, b] = [await net.device('alice'), await net.device('bob')];
    // A session both ways (Bob answered, so Alice's messages are no longer prekey messages).
    const hello = await a.e2ee.pairwise.encrypt('bob', b.deviceId, encode('hello'));
    expect(decode(await b.e2ee.pairwise.decrypt('alice', a.deviceId, hello))).toBe('hello');
    const reply = await b.e2ee.pairwise.encrypt('alice', a.deviceId, encode('hi'));
    expect(decode(await a.e2ee.pairwise.decrypt('bob', b.deviceId, reply))).toBe('hi');
    const inFlight = await a.e2ee.pairwise.encrypt('bob', b.deviceId, encode('in flight'));

    // Whoever relays envelopes makes one up "from Alice"; it arrives first.
    const forged = new Uint8Array(inFlight);
    forged[forged.length - 1]! ^= 1;
    const relayForged = async (id: string) => {
      net.event('bob', {
        type: 'envelope',
        envelope: {
          id,
          senderId: 'alice',
          senderDeviceId: a.deviceId,
          contentType: E2EE_DEVICE_CONTENT_TYPE,
          ciphertext: forged,
          sentAt: new Date(0).toISOString(),
        },
      });
      await net.settled();
    };
    await relayForged('forged');
    expect(b.errors).toHaveLength(1);
    expect(decode(await b.e2ee.pairwise.decrypt('alice', a.deviceId, inFlight))).toBe('in flight');

    // Bob's next message runs X3DH again (a prekey message), and Alice reads it.
    const fresh = await b.e2ee.pairwise.encrypt('alice', a.deviceId, encode('new session'));
    expect(messageType(fresh)).toBe(WireType.PreKeyMessage);
    expect(decode(await a.e2ee.pairwise.decrypt('bob', b.deviceId, fresh))).toBe('new session');

    // Another made-up envelope within the minute renews nothing: no prekey of Alice's is spent.
    const claims = net.claimCalls.single + net.claimCalls.many;
    await relayForged('forged again');
    expect(b.errors).toHaveLength(2);
    await b.e2ee.pairwise.encrypt('alice', a.deviceId, encode('same session'));
    expect(net.claimCalls.single + net.claimCalls.many).toBe(claims);
  });

  it("a made-up prekey message under someone's name does not cost the session with them", async () => {
    const net = createFakeNetwork();
    const [a, b, m] = [
      await net.device('alice'),
      await net.device('bob'),
      await net.device('mallory'),
    ];
    const hello = await a.e2ee.pairwise.encrypt('bob', b.deviceId, encode('hello'));
    expect(decode(await b.e2ee.pairwise.decrypt('alice', a.deviceId, hello))).toBe('hello');
    const reply = await b.e2ee.pairwise.encrypt('alice', a.deviceId, encode('hi'));
    await a.e2ee.pairwise.decrypt('bob', b.deviceId, reply);
    const inFlight = await a.e2ee.pairwise.encrypt('bob', b.deviceId, encode('in flight'));

    // Mallory's first message to Bob (a prekey message, her keys) relayed as if from Alice.
    const forged = await m.e2ee.pairwise.encrypt('bob', b.deviceId, encode('from alice, honest'));
    expect(messageType(forged)).toBe(WireType.PreKeyMessage);
    await expect(b.e2ee.pairwise.decrypt('alice', a.deviceId, forged)).rejects.toThrow(
      /keys the directory does not list/,
    );
    expect(decode(await b.e2ee.pairwise.decrypt('alice', a.deviceId, inFlight))).toBe('in flight');
  });

  it('a share that says "forward" moves my copy only when I asked for it', async () => {
    const net = createFakeNetwork();
    const [a, b] = [await net.device('alice'), await net.device('bob')];
    net.members('g', ['alice', 'bob']);
    const first = await send(a, 'g', 'one');
    await net.settled();
    for (let i = 0; i < 5; i++) await encryptGroup(a.e2ee.store, 'g', encode('unseen'));
    // Alice (the chain's owner) pushes Bob past five messages he may still be about to read.
    const { distribution } = await outboundSenderKey(a.e2ee.store, 'g');
    await sendPayload(a, b, {
      type: 'sender-key',
      conversationId: 'g',
      distribution,
      forward: true,
    });
    await net.settled();
    const key = await b.e2ee.store.getInboundSenderKey(
      'g',
      addressOf('alice', a.deviceId),
      keyIdOf(first.ciphertext),
    );
    expect(key!.iteration).toBe(1);
  });

  it('keeps at most MAX_WAITING messages waiting for keys: past it the oldest wait is given up', async () => {
    const net = createFakeNetwork();
    const [a, b] = [await net.device('alice'), await net.device('bob')];
    net.members('d', ['alice', 'bob']);
    net.lose((e) => !(e.sender.userId === 'alice' && e.userId === 'bob'));
    const sent = [];
    for (let i = 0; i <= MAX_WAITING; i++) sent.push(await send(a, 'd', `lost ${i}`));
    await net.settled();
    expect(b.unreadable).toHaveLength(MAX_WAITING + 1);

    net.lose(() => true);
    // The wait of all of them was given up when the last arrived; asked again, it waits alone.
    passTime(KEY_ANSWER_EVERY_MS); // the first answer was lost: asked again later
    expect(await b.e2ee.retry(sent.at(-1)!)).toBe(false);
    await net.settled();
    expect(b.read.map((r) => r.late)).toEqual([true]);
  });

  it("one member's keys that X3DH refuses leave that member out, not everyone", async () => {
    const net = createFakeNetwork();
    const [a, b] = [
      await net.device('alice'),
      await net.device('bob'),
      await net.device('mallory'),
    ];
    net.members('g', ['alice', 'bob', 'mallory']);
    // A low-order identity key: every Diffie-Hellman with it is all zeros, which X3DH refuses.
    net.published.get('mallory-phone')!.identityKey = toBase64(new Uint8Array(32));
    const errors: unknown[] = [];
    // A listener that throws keeps neither the next one from hearing nor the send from going.
    a.e2ee.onError(() => {
      throw new Error("the app's own listener fails");
    });
    a.e2ee.onError((error) => errors.push(error));
    await send(a, 'g', 'to the group');
    await net.settled();
    expect(texts(b)).toEqual(['to the group']);
    expect(a.sent.some((e) => e.deviceId === 'mallory-phone')).toBe(false);
    // Reported (Mallory's own messages, under her real key, are refused too: not listed).
    expect(errors.some((e) => (e as { code?: string }).code === 'INVALID_KEY')).toBe(true);
  });

  it('offers the key again to a device whose queue was full, with the next send', async () => {
    const net = createFakeNetwork();
    const [a, b, c] = [
      await net.device('alice'),
      await net.device('bob'),
      await net.device('carol'),
    ];
    net.members('g', ['alice', 'bob', 'carol']);
    net.fill('bob-phone', true);
    await send(a, 'g', 'while full');
    await net.settled();
    expect(texts(c)).toEqual(['while full']);
    expect(a.sent.some((e) => e.deviceId === 'bob-phone')).toBe(false);

    net.fill('bob-phone', false);
    await send(a, 'g', 'room again');
    await net.settled();
    // The key (as it is now), then what Bob missed before it, sent again as content.
    expect(a.sent.filter((e) => e.deviceId === 'bob-phone')).toHaveLength(2);
    expect(texts(b)).toEqual(['room again', 'while full']);
    expect(a.sent.filter((e) => e.deviceId === 'carol-phone')).toHaveLength(1);
  });

  it('answers key requests only from current member devices with the current key', async () => {
    const net = createFakeNetwork();
    const [a] = [await net.device('alice'), await net.device('bob'), await net.device('carol')];
    net.members('g', ['alice', 'bob', 'carol']);
    const message = await send(a, 'g', 'x');
    const keyId = keyIdOf(message.ciphertext);
    const queue = createKeyedQueue();
    const store = a.e2ee.store;
    const me = async () => ({ userId: a.userId, deviceId: a.deviceId });
    const trust = createTrust({ store, announce: () => {} });
    const directory = createDirectory({
      store,
      transport: a.transport,
      queue,
      trust,
      report: () => {},
    });
    const outbound = createOutbound({ store, transport: a.transport, directory, queue, me });
    const answer = (userId: string, id = keyId) =>
      outbound.answerKeyRequest('g', { userId, deviceId: `${userId}-phone` }, id);
    expect(await answer('bob')).toBe(true);
    expect(await answer('bob', toBase64(new Uint8Array(16)))).toBe(false); // not our key
    net.members('g', ['alice', 'bob']);
    expect(await answer('carol')).toBe(false); // not a member any more
    expect(await answer('mallory')).toBe(false);
  });

  it('refreshes a stale device list when the server answers DEVICES_CHANGED', async () => {
    const net = createFakeNetwork();
    const [a, b] = [await net.device('alice'), await net.device('bob'), await net.device('carol')];
    net.members('g', ['alice', 'bob', 'carol']);
    await send(a, 'g', 'before');
    // Bob signs in on a laptop and out on his phone; Alice's cached list still names the phone.
    const laptop = await net.device('bob', 'bob-laptop');
    net.published.delete(b.deviceId);
    net.members('g', ['alice', 'bob']); // and Carol leaves: Alice's new key must reach Bob
    await send(a, 'g', 'after');
    await net.settled();
    expect(texts(laptop)).toEqual(['after']);
    expect(a.sent.filter((e) => e.userId === 'bob').map((e) => e.deviceId)).toEqual([
      'bob-phone',
      'bob-laptop',
    ]);
    expect(a.errors).toEqual([]);
  });
});

describe('edits of encrypted messages', () => {
  it('reach every member device decrypted, as edits of the same message, from any of my devices', async () => {
    const net = createFakeNetwork();
    const [a, b] = [await net.device('alice'), await net.device('bob')];
    net.members('d', ['alice', 'bob']);
    const original = await send(a, 'd', 'helo');
    const edited = await edit(a, 'd', original.seq, 'hello (edited)');
    expect(edited).toMatchObject({ id: original.id, contentType: 'mvp/e2ee' });
    expect(decode(edited.ciphertext!)).not.toContain('hello');
    await net.settled();
    for (const d of [a, b])
      expect(d.read.map((m) => [m.message.id, decode(m.body), m.edited])).toEqual([
        [original.id, 'helo', false],
        [original.id, 'hello (edited)', true],
      ]);

    // From Alice's laptop: it has its own sender key, which Bob gets first.
    const laptop = await net.device('alice', 'alice-laptop');
    await edit(laptop, 'd', original.seq, 'v3');
    await net.settled();
    expect(texts(b).at(-1)).toBe('v3');
    expect(b.read.at(-1)).toMatchObject({ edited: true, message: { id: original.id } });
    // History shows the current version, readable there too.
    const current = net.message('d', original.seq)!;
    expect(await b.e2ee.decrypt(current)).toMatchObject({ ok: true, body: encode('v3') });
    expect([a, b, laptop].flatMap((d) => [...d.unreadable, ...d.errors])).toEqual([]);
  });

  it('cannot be moved to another message, nor passed off as an original', async () => {
    const net = createFakeNetwork();
    const [a, b] = [await net.device('alice'), await net.device('bob')];
    net.members('d', ['alice', 'bob']);
    const first = await send(a, 'd', 'first');
    const second = await send(a, 'd', 'second');
    const edited = await edit(a, 'd', first.seq, 'first, edited');
    await net.settled();
    // A server that relabels: the edit's bytes as the edit of the second message, the second's
    // original bytes as an edit, or the edit as a new message.
    const tampered = [
      { ...second, ciphertext: edited.ciphertext, editedAt: edited.editedAt },
      { ...second, id: 'x1', editedAt: edited.editedAt },
      { ...edited, id: 'x2', editedAt: null },
    ];
    for (const message of tampered)
      expect(await b.e2ee.decrypt(message)).toEqual({ ok: false, reason: 'decrypt_failed' });
    expect(texts(b)).toEqual(['first', 'second', 'first, edited']);
  });

  it('asks the editing device (not the sending one) for a key it missed, and reads the edit late', async () => {
    const net = createFakeNetwork();
    const [a, b] = [await net.device('alice'), await net.device('bob')];
    net.members('d', ['alice', 'bob']);
    const original = await send(a, 'd', 'from the phone');
    await net.settled();
    const laptop = await net.device('alice', 'alice-laptop');
    net.lose((e) => !(e.sender.deviceId === 'alice-laptop' && e.userId === 'bob'));
    await edit(laptop, 'd', original.seq, 'fixed');
    await net.settled();
    expect(b.unreadable).toMatchObject([{ reason: 'missing_key', message: { id: original.id } }]);

    net.lose(() => true);
    passTime(KEY_ANSWER_EVERY_MS); // the first answer was lost: asked again later
    expect(await b.e2ee.retry(b.unreadable[0]!.message)).toBe(false);
    await net.settled();
    expect(b.sent.at(-1)).toMatchObject({ userId: 'alice', deviceId: 'alice-laptop' });
    expect(b.read.at(-1)).toMatchObject({ late: true, edited: true, message: { id: original.id } });
    expect(texts(b)).toEqual(['from the phone', 'fixed']);
  });
});

describe('pairwise encryption (client.e2ee.pairwise, used by calls)', () => {
  it('starts sessions with one claim, and keeps the ratchet whole under concurrent and out-of-order use', async () => {
    const net = createFakeNetwork();
    const [a, phone, laptop] = [
      await net.device('alice'),
      await net.device('bob'),
      await net.device('bob', 'bob-laptop'),
    ];
    const stock = (deviceId: string) => net.published.get(deviceId)!.oneTimePrekeys.length;
    // One offer per device, at once (as a call does): one claim for Bob, not one per offer.
    const offers = await Promise.all(
      [phone, laptop].map((d) => a.e2ee.pairwise.encrypt('bob', d.deviceId, encode(d.deviceId))),
    );
    expect([stock('bob-phone'), stock('bob-laptop')]).toEqual([99, 99]);
    expect(decode(await laptop.e2ee.pairwise.decrypt('alice', a.deviceId, offers[1]!))).toBe(
      'bob-laptop',
    );
    // Not for the phone: another session's bytes do not open.
    await expect(phone.e2ee.pairwise.decrypt('alice', a.deviceId, offers[1]!)).rejects.toThrow();

    // Many at once both ways (candidates, renegotiations), read concurrently in reverse order.
    const texts = Array.from({ length: 12 }, (_, i) => `candidate ${i}`);
    const [toPhone, toAlice] = await Promise.all([
      Promise.all(texts.map((t) => a.e2ee.pairwise.encrypt('bob', 'bob-phone', encode(t)))),
      Promise.all(texts.map((t) => laptop.e2ee.pairwise.encrypt('alice', a.deviceId, encode(t)))),
    ]);
    const read = await Promise.all([
      ...toPhone.reverse().map((c) => phone.e2ee.pairwise.decrypt('alice', a.deviceId, c)),
      ...toAlice.reverse().map((c) => a.e2ee.pairwise.decrypt('bob', 'bob-laptop', c)),
    ]);
    expect(read.map(decode)).toEqual([...texts.reverse(), ...texts]);
    expect(decode(await phone.e2ee.pairwise.decrypt('alice', a.deviceId, offers[0]!))).toBe(
      'bob-phone',
    );
    // A replay does not open twice.
    await expect(phone.e2ee.pairwise.decrypt('alice', a.deviceId, offers[0]!)).rejects.toThrow();
    expect([a, phone, laptop].flatMap((d) => d.errors)).toEqual([]);
  });

  it('is never confused with the envelopes that carry sender keys', async () => {
    const net = createFakeNetwork();
    const [a, b] = [await net.device('alice'), await net.device('bob')];
    net.members('d', ['alice', 'bob']);
    await send(a, 'd', 'hello'); // its key went to Bob in an envelope over the same session
    await net.settled();
    const envelope = a.sent.at(-1)!;
    await expect(
      b.e2ee.pairwise.decrypt('alice', a.deviceId, base64ToBytes(envelope.ciphertext)),
    ).rejects.toThrow('already used'); // Bob read it: the ratchet refuses it a second time
    // A pairwise message handed over as an envelope is not taken for a key share.
    const bytes = await a.e2ee.pairwise.encrypt('bob', b.deviceId, encode('{"v":1,"t":"kr"}'));
    net.event('bob', {
      type: 'envelope',
      envelope: {
        id: 'e1',
        senderId: 'alice',
        senderDeviceId: a.deviceId,
        contentType: 'mvp/e2ee-device',
        ciphertext: bytes,
        sentAt: new Date(0).toISOString(),
      },
    });
    await net.settled();
    expect(b.errors).toMatchObject([{ code: 'MALFORMED' }]);
    expect(a.sent.at(-1)).toBe(envelope); // and no key request reached Alice
  });
});
