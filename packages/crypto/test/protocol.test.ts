// The store-driven layer the SDK uses: pairwise sessions and group sender keys through stores.
import { describe, expect, it } from 'vitest';
import {
  CryptoError,
  type CryptoStore,
  createMemoryStore,
  decryptFromDevice,
  DEFAULT_SENDER_KEY_LIMITS,
  decryptGroup,
  encryptGroup,
  encryptToDevice,
  generateDeviceKeys,
  generateOneTimePreKeys,
  generatePreKeys,
  generateSignedPreKey,
  isCryptoError,
  MAX_INBOUND_SENDER_KEYS,
  MAX_RETIRED_SENDER_KEYS,
  outboundSenderKey,
  parseSenderKeyMessage,
  preKeyBundle,
  processSenderKeyDistribution,
  publicDeviceKeys,
  receiveSenderKey,
  rotateOutboundSenderKey,
  noteGroupMessageRead,
  retireSenderKeysOf,
  serializeSession,
  startSession,
  wasGroupMessageRead,
  toBase64,
} from '../src/index.js';
import { str, text } from './helpers.js';

/** Decrypts as the SDK reads: the message is noted read once its content is handed over. */
async function readGroup(
  store: CryptoStore,
  conversationId: string,
  sender: string,
  bytes: Uint8Array,
  context?: Uint8Array,
): Promise<Uint8Array> {
  const plaintext = await decryptGroup(store, conversationId, sender, bytes, context);
  const { keyId, iteration } = parseSenderKeyMessage(bytes);
  await noteGroupMessageRead(store, conversationId, sender, toBase64(keyId), iteration);
  return plaintext;
}

async function newDevice(oneTimeCount = 2) {
  const store = createMemoryStore();
  const keys = generateDeviceKeys();
  await store.putDeviceKeys(keys);
  const { signedPreKey, oneTimePreKeys } = await generatePreKeys(store, {
    signedPreKeyId: 1,
    firstOneTimePreKeyId: 1,
    count: oneTimeCount,
  });
  // What the server would hand out on a claim: the next one-time prekey, or none.
  const claim = () => preKeyBundle(keys, signedPreKey!, oneTimePreKeys.shift());
  return { store, claim };
}

async function rejects(promise: Promise<unknown>): Promise<string | undefined> {
  try {
    await promise;
  } catch (error) {
    if (isCryptoError(error)) return error.code;
    throw error;
  }
  return undefined;
}

async function roundTrip(
  from: CryptoStore,
  fromAddr: string,
  to: CryptoStore,
  toAddr: string,
  msg: string,
) {
  const bytes = await encryptToDevice(from, toAddr, text(msg));
  return str(await decryptFromDevice(to, fromAddr, bytes));
}

describe('store-driven sessions', () => {
  it('X3DH through the stores consumes the one-time prekey; a replayed first message fails', async () => {
    const alice = await newDevice();
    const bob = await newDevice();
    await startSession(alice.store, 'bob:1', bob.claim());
    const first = await encryptToDevice(alice.store, 'bob:1', text('hi'));
    expect(str(await decryptFromDevice(bob.store, 'alice:1', first))).toBe('hi');
    expect(await bob.store.getOneTimePreKey(1)).toBeUndefined();
    expect(await bob.store.getOneTimePreKey(2)).toBeDefined();
    expect(await rejects(decryptFromDevice(bob.store, 'alice:1', first))).toBe('DUPLICATE_MESSAGE');
    expect(await roundTrip(bob.store, 'bob:1', alice.store, 'alice:1', 'hello')).toBe('hello');
    expect(await roundTrip(alice.store, 'alice:1', bob.store, 'bob:1', 'again')).toBe('again');
    // Once Bob's session is gone, the replay cannot rebuild it: its one-time prekey is spent.
    await bob.store.deleteSession('alice:1');
    expect(await rejects(decryptFromDevice(bob.store, 'alice:1', first))).toBe('UNKNOWN_KEY');
  });

  it('the last-resort path (no one-time prekey left) still establishes a session', async () => {
    const alice = await newDevice();
    const bob = await newDevice(0);
    await startSession(alice.store, 'bob:1', bob.claim());
    expect(await roundTrip(alice.store, 'alice:1', bob.store, 'bob:1', 'no otk')).toBe('no otk');
    expect(await roundTrip(bob.store, 'bob:1', alice.store, 'alice:1', 'fine')).toBe('fine');
  });

  it('a new X3DH run from the same device replaces the old session', async () => {
    const alice = await newDevice();
    const bob = await newDevice();
    await startSession(alice.store, 'bob:1', bob.claim());
    await roundTrip(alice.store, 'alice:1', bob.store, 'bob:1', 'one');
    await startSession(alice.store, 'bob:1', bob.claim()); // e.g. Alice lost her session
    expect(await roundTrip(alice.store, 'alice:1', bob.store, 'bob:1', 'two')).toBe('two');
    expect(await roundTrip(bob.store, 'bob:1', alice.store, 'alice:1', 'three')).toBe('three');
  });

  it('two devices that start sessions with each other at once settle on one, in any order', async () => {
    for (const bobFirst of [false, true]) {
      const alice = await newDevice();
      const bob = await newDevice();
      await startSession(alice.store, 'bob:1', bob.claim());
      await startSession(bob.store, 'alice:1', alice.claim());
      const fromAlice = await encryptToDevice(alice.store, 'bob:1', text('offer from alice'));
      const fromBob = await encryptToDevice(bob.store, 'alice:1', text('offer from bob'));
      // Each opens the other's first message, which makes the other's session its current one.
      const opened = bobFirst
        ? [
            str(await decryptFromDevice(bob.store, 'alice:1', fromAlice)),
            str(await decryptFromDevice(alice.store, 'bob:1', fromBob)),
          ]
        : [
            str(await decryptFromDevice(alice.store, 'bob:1', fromBob)),
            str(await decryptFromDevice(bob.store, 'alice:1', fromAlice)),
          ];
      expect(opened.sort()).toEqual(['offer from alice', 'offer from bob']);
      // Bob answers on the session Alice started: she still opens it, and both go on.
      expect(await roundTrip(bob.store, 'bob:1', alice.store, 'alice:1', 'answer')).toBe('answer');
      expect(await roundTrip(alice.store, 'alice:1', bob.store, 'bob:1', 'candidates')).toBe(
        'candidates',
      );
      expect(await roundTrip(bob.store, 'bob:1', alice.store, 'alice:1', 'more')).toBe('more');
      // A message neither session made still fails, with the current session's error.
      const garbage = await encryptToDevice(alice.store, 'bob:1', text('x'));
      garbage[garbage.length - 1]! ^= 1;
      expect(await rejects(decryptFromDevice(bob.store, 'alice:1', garbage))).toBeDefined();
    }
  });

  it('checkRemote sees the keys of whichever session opens a message; refused, nothing is stored', async () => {
    const alice = await newDevice();
    const bob = await newDevice();
    const mallory = await newDevice();
    const identityOf = async (d: { store: CryptoStore }) =>
      (await d.store.getDeviceKeys())!.identity.publicKey;
    const refuse = async () => {
      throw new Error('not theirs');
    };
    const seen: Uint8Array[] = [];
    const note = async (remote: { identityKey: Uint8Array }) => void seen.push(remote.identityKey);
    const open = (bytes: Uint8Array, checkRemote = note) =>
      decryptFromDevice(bob.store, 'alice:1', bytes, { checkRemote });

    // Mallory's first message under Alice's name: refused before its session or its one-time
    // prekey is touched, so the same bytes still open once the check lets them.
    await startSession(mallory.store, 'bob:1', bob.claim());
    const forged = await encryptToDevice(mallory.store, 'bob:1', text('as alice'));
    await expect(open(forged, refuse)).rejects.toThrow('not theirs');
    expect(await bob.store.getSession('alice:1')).toBeUndefined();
    expect(await bob.store.getOneTimePreKey(1)).toBeDefined();
    expect(str(await open(forged))).toBe('as alice');
    expect(seen).toEqual([await identityOf(mallory)]);

    // Alice's run replaces Mallory's; an earlier run of hers is archived behind her next one.
    seen.length = 0;
    await startSession(alice.store, 'bob:1', bob.claim());
    expect(str(await open(await encryptToDevice(alice.store, 'bob:1', text('one'))))).toBe('one');
    const late = await encryptToDevice(alice.store, 'bob:1', text('late'));
    await startSession(alice.store, 'bob:1', bob.claim());
    expect(str(await open(await encryptToDevice(alice.store, 'bob:1', text('two'))))).toBe('two');
    const current = await encryptToDevice(alice.store, 'bob:1', text('current'));
    for (const [bytes, plaintext] of [
      [late, 'late'],
      [current, 'current'],
    ] as const) {
      const before = serializeSession((await bob.store.getSession('alice:1'))!);
      await expect(open(bytes, refuse)).rejects.toThrow('not theirs');
      expect(serializeSession((await bob.store.getSession('alice:1'))!)).toBe(before);
      expect(str(await open(bytes))).toBe(plaintext);
    }
    expect(seen).toEqual(Array(4).fill(await identityOf(alice)));
    // Her run, archived now, is checked as well when it opens a message.
    const again = await encryptToDevice(mallory.store, 'bob:1', text('still alice'));
    await expect(open(again, refuse)).rejects.toThrow('not theirs');
  });

  it('no session, no device keys: typed errors', async () => {
    const store = createMemoryStore();
    expect(await rejects(encryptToDevice(store, 'x', text('a')))).toBe('UNKNOWN_KEY');
    expect(await rejects(startSession(store, 'x', (await newDevice()).claim()))).toBe(
      'UNKNOWN_KEY',
    );
  });
});

describe('memory store', () => {
  it('lists the signed prekeys it holds, and keeps trust records per user', async () => {
    const store = createMemoryStore();
    const keys = generateDeviceKeys();
    expect(await store.signedPreKeyIds()).toEqual([]);
    await store.putSignedPreKey(generateSignedPreKey(keys, 7));
    await store.putSignedPreKey(generateSignedPreKey(keys, 9));
    await store.putOneTimePreKey(generateOneTimePreKeys(8, 1)[0]!);
    expect((await store.signedPreKeyIds()).sort()).toEqual([7, 9]);
    await store.deleteSignedPreKey(7);
    expect(await store.signedPreKeyIds()).toEqual([9]);

    const record = {
      verified: false,
      devices: [{ deviceId: 'd', keys: publicDeviceKeys(keys) }],
    };
    expect(await store.getTrust('u')).toBeUndefined();
    await store.putTrust('u', record);
    expect(await store.getTrust('u')).toEqual(record);
    expect(await store.getTrust('v')).toBeUndefined();
  });
});

describe('store-driven groups', () => {
  it('a copy too far behind moves forward only with `forward`, and never back', async () => {
    const alice = createMemoryStore();
    const bob = createMemoryStore();
    const conversation = 'conv-far';
    const { distribution: origin } = await outboundSenderKey(alice, conversation);
    await receiveSenderKey(bob, conversation, 'alice:1', origin);
    const m0 = await encryptGroup(alice, conversation, text('zero'));
    const m1 = await encryptGroup(alice, conversation, text('one'));
    // Bob reads m1 only: m0's key waits among his skipped keys.
    expect(str(await readGroup(bob, conversation, 'alice:1', m1))).toBe('one');
    for (let i = 0; i < DEFAULT_SENDER_KEY_LIMITS.maxForward + 1; i++)
      await encryptGroup(alice, conversation, text('unseen'));
    const far = await encryptGroup(alice, conversation, text('far ahead'));
    expect(await rejects(decryptGroup(bob, conversation, 'alice:1', far))).toBe('TOO_MANY_SKIPPED');

    // Alice's current distribution (its iteration is past `far`), as an ordinary re-share: ignored.
    const { distribution: current } = await outboundSenderKey(alice, conversation);
    await receiveSenderKey(bob, conversation, 'alice:1', current);
    const next = await encryptGroup(alice, conversation, text('next'));
    expect(await rejects(decryptGroup(bob, conversation, 'alice:1', next))).toBe(
      'TOO_MANY_SKIPPED',
    );

    // Asked for: Bob's copy moves there, keeps m0's key, and reads from there on.
    await receiveSenderKey(bob, conversation, 'alice:1', current, { forward: true });
    expect(str(await readGroup(bob, conversation, 'alice:1', next))).toBe('next');
    expect(str(await readGroup(bob, conversation, 'alice:1', m0))).toBe('zero');
    // Passed over unread: gone, not a duplicate (its sender is asked for it as content).
    expect(await rejects(decryptGroup(bob, conversation, 'alice:1', far))).toBe('MESSAGE_KEY_GONE');
    // The origin, even with `forward`, never moves it back.
    await receiveSenderKey(bob, conversation, 'alice:1', origin, { forward: true });
    expect(await rejects(decryptGroup(bob, conversation, 'alice:1', m1))).toBe('DUPLICATE_MESSAGE');
  });

  it("retires one sender's keys of one conversation, keeping what was read; the memory store lists senders", async () => {
    const alice = createMemoryStore();
    const bob = createMemoryStore();
    const { distribution } = await outboundSenderKey(alice, 'left');
    for (const [conversation, sender] of [
      ['left', 'alice:1'],
      ['left', 'carol:1'],
      ['stays', 'alice:1'],
    ] as const)
      await receiveSenderKey(bob, conversation, sender, distribution);
    expect((await bob.inboundSenderKeySenders!('left')).sort()).toEqual(['alice:1', 'carol:1']);
    const [m0, m1, m2] = [
      await encryptGroup(alice, 'left', text('zero')),
      await encryptGroup(alice, 'left', text('one')),
      await encryptGroup(alice, 'left', text('two')),
    ];
    expect(str(await readGroup(bob, 'left', 'alice:1', m1))).toBe('one');

    expect(await retireSenderKeysOf(bob, 'left', 'alice:1')).toBe(1);
    expect(await retireSenderKeysOf(bob, 'left', 'alice:1')).toBe(0); // once
    const keyId = toBase64(processSenderKeyDistribution(distribution).keyId);
    const retired = await bob.getInboundSenderKey('left', 'alice:1', keyId);
    expect([retired?.retired, retired?.chainKey.length, retired?.skipped]).toEqual([true, 0, []]);
    expect(await rejects(decryptGroup(bob, 'left', 'alice:1', m1))).toBe('DUPLICATE_MESSAGE');
    expect(await rejects(decryptGroup(bob, 'left', 'alice:1', m0))).toBe('MESSAGE_KEY_GONE');
    expect(await rejects(decryptGroup(bob, 'left', 'alice:1', m2))).toBe('TOO_MANY_SKIPPED');
    // Another sender's keys, and the same sender's in another conversation, stay whole.
    for (const [conversation, sender] of [
      ['left', 'carol:1'],
      ['stays', 'alice:1'],
    ] as const)
      expect((await bob.getInboundSenderKey(conversation, sender, keyId))?.retired).toBeUndefined();
    // Deleting the last key of a sender takes it off the list.
    await bob.deleteInboundSenderKey('left', 'carol:1', keyId);
    expect(await bob.inboundSenderKeySenders!('left')).toEqual(['alice:1']);
    expect(await bob.inboundSenderKeySenders!('none')).toEqual([]);
  });

  it('a message read from elsewhere (resent content) is never opened again, and reads are kept in the store', async () => {
    const alice = createMemoryStore();
    const bob = createMemoryStore();
    const conversation = 'conv-noted';
    const { distribution } = await outboundSenderKey(alice, conversation);
    await receiveSenderKey(bob, conversation, 'alice:1', distribution);
    const keyId = toBase64(processSenderKeyDistribution(distribution).keyId);
    const [m0, m1, m2] = [
      await encryptGroup(alice, conversation, text('zero')),
      await encryptGroup(alice, conversation, text('one')),
      await encryptGroup(alice, conversation, text('two')),
    ];
    expect(str(await readGroup(bob, conversation, 'alice:1', m1))).toBe('one');
    const read = (iteration: number) =>
      wasGroupMessageRead(bob, conversation, 'alice:1', keyId, iteration);
    expect([await read(0), await read(1), await read(2)]).toEqual([false, true, false]);

    // m0's key waits among the skipped ones; its content came resent: the copy does not open.
    expect(await noteGroupMessageRead(bob, conversation, 'alice:1', keyId, 0)).toBe(true);
    expect(await rejects(decryptGroup(bob, conversation, 'alice:1', m0))).toBe('DUPLICATE_MESSAGE');
    // Ahead of the chain too.
    expect(await noteGroupMessageRead(bob, conversation, 'alice:1', keyId, 2)).toBe(true);
    expect(await rejects(decryptGroup(bob, conversation, 'alice:1', m2))).toBe('DUPLICATE_MESSAGE');
    expect([await read(0), await read(1), await read(2)]).toEqual([true, true, true]);
    // The chain moves past the place noted ahead of it without keeping its key.
    const m3 = await encryptGroup(alice, conversation, text('three'));
    expect(str(await readGroup(bob, conversation, 'alice:1', m3))).toBe('three');
    const held = await bob.getInboundSenderKey(conversation, 'alice:1', keyId);
    expect(held?.skipped).toEqual([]);
    // A key not held: nothing to note it in.
    expect(await noteGroupMessageRead(bob, conversation, 'carol:1', keyId, 0)).toBe(false);
    expect(await wasGroupMessageRead(bob, conversation, 'carol:1', keyId, 0)).toBe(false);
  });

  it("keeps each sender's newest keys whole and retires the rest; a retired key never reads again what it read", async () => {
    // Alice's first key stays in `alice` (as if the server withheld her later shares from her
    // own sends); the keys after it come from `rotations`, all received by Bob as hers.
    const alice = createMemoryStore();
    const rotations = createMemoryStore();
    const bob = createMemoryStore();
    const conversation = 'conv-many';
    const idOf = (distribution: Uint8Array) =>
      toBase64(processSenderKeyDistribution(distribution).keyId);
    const { distribution: first } = await outboundSenderKey(alice, conversation);
    await receiveSenderKey(bob, conversation, 'alice:1', first);
    await receiveSenderKey(bob, conversation, 'carol:1', first); // another sender's keys
    const read = await encryptGroup(alice, conversation, text('read long ago'));
    expect(str(await readGroup(bob, conversation, 'alice:1', read))).toBe('read long ago');
    const unread = await encryptGroup(alice, conversation, text('never arrived'));

    const later: Uint8Array[] = [];
    for (let i = 0; i < MAX_INBOUND_SENDER_KEYS; i++) {
      later.push(await rotateOutboundSenderKey(rotations, conversation));
      await receiveSenderKey(bob, conversation, 'alice:1', later.at(-1)!);
    }
    const state = async (distribution: Uint8Array, sender = 'alice:1') =>
      (await bob.getInboundSenderKey(conversation, sender, idOf(distribution)))?.retired ?? false;
    expect(await state(first)).toBe(true);
    expect(await Promise.all(later.map((d) => state(d)))).toEqual(later.map(() => false));
    expect(await state(first, 'carol:1')).toBe(false);
    const retired = await bob.getInboundSenderKey(conversation, 'alice:1', idOf(first));
    expect([retired?.chainKey.length, retired?.skipped, retired?.iteration]).toEqual([0, [], 1]);

    // A held-back copy of the first distribution, even as a `forward` re-share, changes nothing:
    // the message already read is not read again as new. The one that never came is past
    // where the chain had got: its key is asked for as it is now.
    await receiveSenderKey(bob, conversation, 'alice:1', first);
    await receiveSenderKey(bob, conversation, 'alice:1', first, { forward: true });
    expect(await rejects(decryptGroup(bob, conversation, 'alice:1', read))).toBe(
      'DUPLICATE_MESSAGE',
    );
    expect(await rejects(decryptGroup(bob, conversation, 'alice:1', unread))).toBe(
      'TOO_MANY_SKIPPED',
    );
    // Forged under the retired id: the signature still decides first.
    await outboundSenderKey(bob, conversation);
    const forged = await encryptGroup(bob, conversation, text('forged'));
    const forgedUnder = new Uint8Array(forged);
    forgedUnder.set(processSenderKeyDistribution(first).keyId, 2);
    expect(await rejects(decryptGroup(bob, conversation, 'alice:1', forgedUnder))).toBe(
      'BAD_SIGNATURE',
    );

    // Alice still writes under it: her chain as it is now, shared `forward` (as asked), brings
    // it back from there on. What it read stays read.
    const { distribution: now } = await outboundSenderKey(alice, conversation);
    await receiveSenderKey(bob, conversation, 'alice:1', now);
    expect(await state(first)).toBe(true); // not without `forward`
    await receiveSenderKey(bob, conversation, 'alice:1', now, { forward: true });
    expect(await state(first)).toBe(false);
    // Back as the newest, within the bound: the oldest of the others is retired for it.
    expect(await Promise.all(later.map((d) => state(d)))).toEqual([
      true,
      false,
      false,
      false,
      false,
    ]);
    const next = await encryptGroup(alice, conversation, text('still hers'));
    expect(str(await readGroup(bob, conversation, 'alice:1', next))).toBe('still hers');
    expect(await rejects(decryptGroup(bob, conversation, 'alice:1', read))).toBe(
      'DUPLICATE_MESSAGE',
    );
  });

  it('a forward share keeps when the key came; keys from before times were kept are not retired blindly', async () => {
    const alice = createMemoryStore();
    const bob = createMemoryStore();
    const conversation = 'conv-order';
    const idOf = (distribution: Uint8Array) =>
      toBase64(processSenderKeyDistribution(distribution).keyId);
    const keys: Uint8Array[] = [(await outboundSenderKey(alice, conversation)).distribution];
    for (let i = 1; i < MAX_INBOUND_SENDER_KEYS; i++)
      keys.push(await rotateOutboundSenderKey(alice, conversation));
    for (const distribution of keys)
      await receiveSenderKey(bob, conversation, 'alice:1', distribution);
    const receivedAt = async (distribution: Uint8Array) =>
      (await bob.getInboundSenderKey(conversation, 'alice:1', idOf(distribution)))!.receivedAt;

    // The current key moved forward (asked for): still the newest, so the next rotation
    // retires the oldest, not it.
    await encryptGroup(alice, conversation, text('x'));
    const before = await receivedAt(keys.at(-1)!);
    const current = (await outboundSenderKey(alice, conversation)).distribution;
    await receiveSenderKey(bob, conversation, 'alice:1', current, { forward: true });
    expect(await receivedAt(keys.at(-1)!)).toBe(before);
    keys.push(await rotateOutboundSenderKey(alice, conversation));
    await receiveSenderKey(bob, conversation, 'alice:1', keys.at(-1)!);
    const retired = async (distribution: Uint8Array) =>
      (await bob.getInboundSenderKey(conversation, 'alice:1', idOf(distribution)))!.retired ??
      false;
    expect(await Promise.all(keys.map(retired))).toEqual([true, false, false, false, false, false]);

    // Records from before keys had a time (0): none is retired by the key that meets them.
    for (const distribution of keys.slice(1)) {
      const id = idOf(distribution);
      const key = (await bob.getInboundSenderKey(conversation, 'alice:1', id))!;
      await bob.putInboundSenderKey(conversation, 'alice:1', id, { ...key, receivedAt: 0 });
    }
    keys.push(await rotateOutboundSenderKey(alice, conversation));
    await receiveSenderKey(bob, conversation, 'alice:1', keys.at(-1)!);
    expect(await Promise.all(keys.map(retired))).toEqual([
      true,
      false,
      false,
      false,
      false,
      false,
      false,
    ]);
    // Dated now, they are ranked at the next key: the oldest go then.
    keys.push(await rotateOutboundSenderKey(alice, conversation));
    await receiveSenderKey(bob, conversation, 'alice:1', keys.at(-1)!);
    expect((await Promise.all(keys.map(retired))).filter((r) => !r)).toHaveLength(
      MAX_INBOUND_SENDER_KEYS,
    );
  });

  it('a held record that does not read does not stop the next key', async () => {
    const alice = createMemoryStore();
    const bob = createMemoryStore();
    const conversation = 'conv-broken';
    await receiveSenderKey(
      bob,
      conversation,
      'alice:1',
      (await outboundSenderKey(alice, conversation)).distribution,
    );
    const get = bob.getInboundSenderKey.bind(bob);
    bob.getInboundSenderKey = async (...args) => {
      if (args[2] !== idOfLast) throw new CryptoError('MALFORMED', 'unreadable');
      return get(...args);
    };
    const next = await rotateOutboundSenderKey(alice, conversation);
    const idOfLast = toBase64(processSenderKeyDistribution(next).keyId);
    await receiveSenderKey(bob, conversation, 'alice:1', next);
    const message = await encryptGroup(alice, conversation, text('reads'));
    expect(str(await readGroup(bob, conversation, 'alice:1', message))).toBe('reads');
  });

  it(`remembers ${MAX_RETIRED_SENDER_KEYS} retired keys per sender and deletes older ones`, async () => {
    const alice = createMemoryStore();
    const bob = createMemoryStore();
    const conversation = 'conv-churn';
    const ids: string[] = [];
    for (let i = 0; i < MAX_INBOUND_SENDER_KEYS + MAX_RETIRED_SENDER_KEYS + 2; i++) {
      const distribution =
        i === 0
          ? (await outboundSenderKey(alice, conversation)).distribution
          : await rotateOutboundSenderKey(alice, conversation);
      ids.push(toBase64(processSenderKeyDistribution(distribution).keyId));
      await receiveSenderKey(bob, conversation, 'alice:1', distribution);
    }
    const held = new Set(await bob.inboundSenderKeyIds!(conversation, 'alice:1'));
    expect(held.size).toBe(MAX_INBOUND_SENDER_KEYS + MAX_RETIRED_SENDER_KEYS);
    expect(ids.slice(0, 2).some((id) => held.has(id))).toBe(false);
    expect(ids.slice(2).every((id) => held.has(id))).toBe(true);
  });

  it('sender keys travel through pairwise sessions; a removed member is locked out after rotation', async () => {
    const alice = await newDevice();
    const bob = await newDevice();
    const carol = await newDevice();
    for (const [addr, peer] of [
      ['bob:1', bob],
      ['carol:1', carol],
    ] as const) {
      await startSession(alice.store, addr, peer.claim());
    }
    const conversation = 'conv-1';
    const context = text('conv-1|alice:1');

    const { created, distribution } = await outboundSenderKey(alice.store, conversation);
    expect(created).toBe(true);
    for (const [addr, peer] of [
      ['bob:1', bob],
      ['carol:1', carol],
    ] as const) {
      const envelope = await encryptToDevice(alice.store, addr, distribution);
      const received = await decryptFromDevice(peer.store, 'alice:1', envelope);
      await receiveSenderKey(peer.store, conversation, 'alice:1', received);
    }

    const m1 = await encryptGroup(alice.store, conversation, text('hello group'), context);
    for (const peer of [bob, carol]) {
      expect(str(await readGroup(peer.store, conversation, 'alice:1', m1, context))).toBe(
        'hello group',
      );
    }
    expect(await rejects(decryptGroup(bob.store, conversation, 'alice:1', m1, context))).toBe(
      'DUPLICATE_MESSAGE',
    );
    // A re-sent distribution does not rewind Bob's chain (the replay stays refused).
    await receiveSenderKey(bob.store, conversation, 'alice:1', distribution);
    expect(await rejects(decryptGroup(bob.store, conversation, 'alice:1', m1, context))).toBe(
      'DUPLICATE_MESSAGE',
    );

    // Carol is removed: a new sender key goes to Bob only.
    const rotated = await rotateOutboundSenderKey(alice.store, conversation);
    const envelope = await encryptToDevice(alice.store, 'bob:1', rotated);
    await receiveSenderKey(
      bob.store,
      conversation,
      'alice:1',
      await decryptFromDevice(bob.store, 'alice:1', envelope),
    );
    const m2 = await encryptGroup(alice.store, conversation, text('without carol'), context);
    expect(str(await readGroup(bob.store, conversation, 'alice:1', m2, context))).toBe(
      'without carol',
    );
    expect(await rejects(decryptGroup(carol.store, conversation, 'alice:1', m2, context))).toBe(
      'UNKNOWN_KEY',
    );
  });
});
