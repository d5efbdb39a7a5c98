import {
  CryptoError,
  createMemoryStore,
  parseSenderKeyMessage,
  toBase64,
  type CryptoStore,
} from '@mvp/crypto';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { base64ToBytes, bytesToBase64 } from '../base64';
import type { ExpiredMessage } from '../expiry';
import type { Message } from '../messaging';
import type { OutboxHandle } from '../outboxTypes';
import {
  createFakeNetwork,
  decode,
  edit,
  encode,
  passTime,
  send,
  sendPayload,
  texts,
  type FakeDevice,
} from './fakeNetwork.testing';
import { ANSWERS_PER_USER_PER_MINUTE, KEY_ANSWER_EVERY_MS } from './outbound';
import { MAX_RESEND_ITERATIONS, decodeDevicePayload, encodeContent } from './payloads';
import {
  RESEND_MAX_CONTENT_BYTES,
  SEND_LOG_MAX_AGE_MS,
  SEND_LOG_MAX_ENTRIES,
  type SendLogStore,
  createSendLog,
} from './sendLog';

const placeOf = (message: Message) => {
  const { keyId, iteration } = parseSenderKeyMessage(message.ciphertext!);
  return { keyId: toBase64(keyId), iteration };
};

/** The message with the last bit of its bytes flipped: it no longer verifies. */
const flipped = (m: Message) => {
  const bytes = new Uint8Array(m.ciphertext!);
  bytes[bytes.length - 1]! ^= 1;
  return { ...m, ciphertext: bytes };
};

/** A memory crypto store whose next sender key write fails once `failNextPut` is called. */
function storeFailingOnce() {
  const store = createMemoryStore();
  const put = store.putInboundSenderKey.bind(store);
  let failNext = false;
  store.putInboundSenderKey = async (...args) => {
    if (!failNext) return put(...args);
    failNext = false;
    throw new Error('disk full');
  };
  return { store, failNextPut: () => void (failNext = true) };
}

/** What a device's app was handed late, as text and message id. */
const lateOf = (d: FakeDevice) =>
  d.read.filter((m) => m.late).map((m) => [decode(m.body), m.message.id]);

afterEach(() => vi.restoreAllMocks()); // `passTime`

/**
 * Alice (whose send log persists in a map), Bob and Carol in `g`, and Alice's key shares to Bob
 * lost on their way.
 */
async function withSendLogAndLostShare() {
  const { store: sendLog, keys, records } = memoryLogStore();
  const net = createFakeNetwork();
  const a = await net.device('alice', undefined, undefined, { sendLog });
  const b = await net.device('bob');
  await net.device('carol');
  net.members('g', ['alice', 'bob', 'carol']);
  net.lose((e) => !(e.sender.userId === 'alice' && e.userId === 'bob'));
  return { net, a, b, sendLog, keys, records };
}

/**
 * Carol leaves `g`, so Alice's next send (from `alice`) is under a new key, and the key Bob
 * lost is gone; Bob's app asks for `missed` again, which brings its content if Alice has it.
 */
async function askAgainOnceCarolLeft(
  net: ReturnType<typeof createFakeNetwork>,
  alice: FakeDevice,
  bob: FakeDevice,
  missed: Message,
) {
  net.lose(() => true);
  net.members('g', ['alice', 'bob']);
  await send(alice, 'g', 'after');
  await net.settled();
  passTime(KEY_ANSWER_EVERY_MS);
  expect(await bob.e2ee.retry(missed)).toBe(false);
  await net.settled();
}

/**
 * Alice queues something whose answer does not come before her app restarts (with its stores);
 * the restarted outbox sends it again and is answered. Answers the restarted device and the
 * stored message.
 */
async function restartBeforeTheAnswer(
  net: ReturnType<typeof createFakeNetwork>,
  alice: FakeDevice,
  sendLog: SendLogStore,
  queue: () => Promise<OutboxHandle>,
) {
  net.holdAnswers(true);
  const handle = await queue();
  await net.settled();
  const restarted = await net.device('alice', alice.deviceId, undefined, {
    store: alice.e2ee.store,
    sendLog,
  });
  net.holdAnswers(false);
  return { restarted, result: await handle.result };
}

/** Alice, and Bob whose keys live in `store`, both in `g`. */
async function aliceAndBobKeepingIn(store: CryptoStore) {
  const net = createFakeNetwork();
  const a = await net.device('alice');
  const b = await net.device('bob', undefined, undefined, { store });
  net.members('g', ['alice', 'bob']);
  return { net, a, b };
}

describe('messages sent again as content (retry receipts)', () => {
  it('a message under a key its sender replaced since is asked for and read late', async () => {
    const net = createFakeNetwork();
    const [a, b] = [await net.device('alice'), await net.device('bob'), await net.device('carol')];
    net.members('g', ['alice', 'bob', 'carol']);
    net.lose((e) => !(e.sender.userId === 'alice' && e.userId === 'bob'));
    const missed = await send(a, 'g', 'before carol left');
    await net.settled();
    expect(b.unreadable).toEqual([{ message: missed, reason: 'missing_key' }]);

    // Carol leaves: Alice's next send makes and shares a new key, so the one Bob asks for
    // is gone. Alice answers so, and Bob asks for the message itself.
    net.lose(() => true);
    net.members('g', ['alice', 'bob']);
    await send(a, 'g', 'after');
    await net.settled();
    passTime(KEY_ANSWER_EVERY_MS); // the first answer was lost: asked again later
    expect(await b.e2ee.retry(missed)).toBe(false);
    await net.settled();
    expect(lateOf(b)).toEqual([['before carol left', missed.id]]);
    expect(texts(b)).toEqual(['after', 'before carol left']);
    expect(b.errors).toEqual([]);
  });

  it('is sent only to those who were members when it was sent', async () => {
    const net = createFakeNetwork();
    const [a, , d] = [await net.device('alice'), await net.device('bob'), await net.device('dave')];
    net.members('g', ['alice', 'bob']);
    const before = await send(a, 'g', 'before dave');
    await net.settled();
    // Dave joins, and the server hands him the earlier message (it keeps history).
    net.members('g', ['alice', 'bob', 'dave']);
    net.event('dave', { type: 'message.new', message: before });
    await net.settled();
    // He gets the key as it is now, asks for the message as content, and is not sent it.
    expect(d.unreadable.map((u) => u.reason)).toEqual(['missing_key', 'decrypt_failed']);
    expect(d.sent.filter((e) => e.userId === 'alice')).toHaveLength(2); // key, then content
    expect(texts(d)).toEqual([]);
    // What is sent after he joined, he reads.
    await send(a, 'g', 'welcome');
    await net.settled();
    expect(texts(d)).toEqual(['welcome']);
  });

  it('fits only the message asked for: not a copy the server placed elsewhere', async () => {
    const net = createFakeNetwork();
    const [a, b] = [await net.device('alice'), await net.device('bob')];
    net.members('g', ['alice', 'bob']);
    const original = await send(a, 'g', 'once');
    await net.settled();
    // The server shows Bob the same bytes again, as another message: his copy of the key has
    // used that place, so it is a replay, and nobody is asked.
    const copy = { ...original, id: 'copy', seq: 99 };
    const asked = b.sent.length;
    net.event('bob', { type: 'message.new', message: copy });
    await net.settled();
    expect(b.unreadable).toEqual([{ message: copy, reason: 'decrypt_failed' }]);
    expect(b.sent).toHaveLength(asked);
    // His app retries it: still a place he read, so nothing is asked and nothing shown.
    const answers = a.sent.length;
    expect(await b.e2ee.retry(copy)).toBe(false);
    await net.settled();
    expect([b.sent.length, a.sent.length]).toEqual([asked, answers]);
    expect(texts(b)).toEqual(['once']);
    expect(lateOf(b)).toEqual([]);
  });

  it('comes only from the device that sealed the message', async () => {
    const net = createFakeNetwork();
    const [a, b, c] = [
      await net.device('alice'),
      await net.device('bob'),
      await net.device('carol'),
    ];
    net.members('g', ['alice', 'bob', 'carol']);
    await send(c, 'g', 'carol was here'); // Carol now has a session with Bob
    await net.settled();
    // Bob's queue is full when Alice sends, so he gets her key only with her next message,
    // as it is then: he asks for the earlier one as content, and his request is lost.
    net.fill(b.deviceId, true);
    const lost = await send(a, 'g', 'the real text');
    await net.settled();
    net.fill(b.deviceId, false);
    net.lose((e) => !(e.sender.userId === 'bob' && e.userId === 'alice'));
    await send(a, 'g', 'next');
    await net.settled();
    expect(b.unreadable.map((u) => [u.message.id, u.reason])).toEqual([
      [lost.id, 'missing_key'],
      [lost.id, 'decrypt_failed'],
    ]);
    net.lose(() => true);
    // Carol, another member, sends Bob "the content" of Alice's message.
    await sendPayload(c, b, {
      type: 'resend',
      conversationId: 'g',
      ...placeOf(lost),
      messageId: lost.id,
      seq: lost.seq,
      editedAt: null,
      content: encodeContent({ contentType: 'text/plain', body: encode('forged') }),
    });
    await net.settled();
    expect(texts(b)).toEqual(['carol was here', 'next']);
    // Alice's own answer, when his app asks again, is read.
    expect(await b.e2ee.retry(lost)).toBe(false);
    await net.settled();
    expect(lateOf(b)).toEqual([['the real text', lost.id]]);
  });

  it('is not sent to a device added to a member after the send', async () => {
    const net = createFakeNetwork();
    const [a] = [await net.device('alice'), await net.device('bob'), await net.device('carol')];
    net.members('g', ['alice', 'bob', 'carol']);
    const before = await send(a, 'g', 'before the laptop');
    await net.settled();
    net.members('g', ['alice', 'bob']);
    await send(a, 'g', 'key replaced'); // Carol left: Alice's key is new
    await net.settled();
    // A device of Bob's appears (perhaps one the server slipped in) and is shown the message.
    const laptop = await net.device('bob', 'bob-laptop');
    net.event('bob', { type: 'message.new', message: before });
    await net.settled();
    expect(laptop.unreadable.map((u) => u.reason)).toEqual(['missing_key']);
    // Alice tells it the key is gone, and it asks for the message; she does not send it.
    expect(laptop.sent.filter((e) => e.userId === 'alice')).toHaveLength(2);
    expect(texts(laptop)).toEqual([]);
    expect(laptop.errors).toEqual([]);
  });

  it('a device added to a member since the key was made gets it from now on, not from the start', async () => {
    const net = createFakeNetwork();
    const [a] = [await net.device('alice'), await net.device('bob')];
    net.members('g', ['alice', 'bob']);
    const before = await send(a, 'g', 'before the laptop');
    await net.settled();
    const laptop = await net.device('bob', 'bob-laptop');
    net.event('bob', { type: 'message.new', message: before });
    await net.settled();
    // It asks for the key and gets it as it is now; the earlier message is not resent either.
    expect(laptop.unreadable.map((u) => u.reason)).toEqual(['missing_key', 'decrypt_failed']);
    expect(texts(laptop)).toEqual([]);
    await send(a, 'g', 'after');
    await net.settled();
    expect(texts(laptop)).toEqual(['after']);
  });

  it('answers a repeated request once, and nothing for a key never used or a deleted message', async () => {
    const net = createFakeNetwork();
    const [a, b] = [await net.device('alice'), await net.device('bob')];
    net.members('g', ['alice', 'bob']);
    const kept = await send(a, 'g', 'kept');
    const deleted = await send(a, 'g', 'deleted');
    await send(b, 'g', 'hi'); // Bob's session with Alice, for the requests below
    await net.settled();
    net.event('alice', {
      type: 'message.updated',
      message: { ...deleted, ciphertext: null, deletedAt: new Date(0).toISOString() },
    });
    await net.settled();
    const toBob = () => a.sent.filter((e) => e.userId === 'bob').length;
    const before = toBob();
    const request = (message: Message) =>
      sendPayload(b, a, {
        type: 'resend-request',
        conversationId: 'g',
        ...(({ keyId, iteration }) => ({ keyId, iterations: [iteration] }))(placeOf(message)),
      });
    for (let i = 0; i < 3; i++) await request(kept);
    await request(deleted);
    await sendPayload(b, a, { type: 'key-request', conversationId: 'g', keyId: 'bm90IGEga2V5' });
    await net.settled();
    expect(toBob()).toBe(before + 1); // one resend of "kept", nothing else
  });

  it('identical key requests that come together get one answer, and made-up keys none', async () => {
    const net = createFakeNetwork();
    const [a, b] = [await net.device('alice'), await net.device('bob')];
    net.members('g', ['alice', 'bob']);
    const message = await send(a, 'g', 'one');
    await send(b, 'g', 'hi'); // Bob's session with Alice
    await net.settled();
    const toBob = () => a.sent.filter((e) => e.userId === 'bob').length;
    const before = toBob();
    const { keyId } = placeOf(message);
    // A server that takes its time: the requests overlap while Alice looks Bob up.
    const { transport } = a;
    const members = transport.members.bind(transport);
    const lookups: Promise<unknown>[] = [];
    transport.members = (id) => {
      const lookup = new Promise((resolve) => setTimeout(resolve, 20)).then(() => members(id));
      lookups.push(lookup);
      return lookup;
    };
    /** Until every answer that started is done. */
    const answersDone = async () => {
      for (let seen = -1; seen !== lookups.length;) {
        seen = lookups.length;
        await Promise.allSettled(lookups);
        await net.settled();
      }
    };
    // One after the other (one ratchet), delivered while the first answer is still out.
    for (let i = 0; i < 5; i++)
      await sendPayload(b, a, { type: 'key-request', conversationId: 'g', keyId });
    for (let i = 0; i < 5; i++)
      await sendPayload(b, a, {
        type: 'key-request',
        conversationId: 'g',
        keyId: `bm90LSR7aX0=${i}`,
      });
    await net.settled();
    await answersDone();
    expect(toBob()).toBe(before + 1);
  });

  it(`answers one member's devices ${ANSWERS_PER_USER_PER_MINUTE} times a minute, all together`, async () => {
    const net = createFakeNetwork();
    const a = await net.device('alice');
    const bobs: FakeDevice[] = [];
    for (let i = 0; i <= ANSWERS_PER_USER_PER_MINUTE; i++)
      bobs.push(await net.device('bob', `bob-${i}`));
    net.members('g', ['alice', 'bob']);
    // The key's first share to Bob's devices is lost: each of them asks for it.
    let sharing = true;
    net.lose((e) => !(sharing && e.sender.userId === 'alice' && e.userId === 'bob'));
    const message = await send(a, 'g', 'one');
    sharing = false;
    await net.settled();
    const reading = bobs.filter((b) => texts(b).length > 0);
    expect(reading).toHaveLength(ANSWERS_PER_USER_PER_MINUTE);
    // The one left out is answered in the next minute.
    const left = bobs.find((b) => texts(b).length === 0)!;
    passTime(60_000);
    expect(await left.e2ee.retry(message)).toBe(false);
    await net.settled();
    expect(texts(left)).toEqual(['one']);
  });

  it('a member whose queue refuses every answer gets one call per key in ten seconds, not one per request', async () => {
    const net = createFakeNetwork();
    const [a, b] = [await net.device('alice'), await net.device('bob')];
    net.members('g', ['alice', 'bob']);
    const message = await send(a, 'g', 'one');
    await send(b, 'g', 'hi'); // Bob's session with Alice
    await net.settled();
    net.fill(b.deviceId, true); // every answer to Bob is refused, after costing Alice a call
    let calls = 0;
    const sendToDevices = a.transport.sendToDevices.bind(a.transport);
    a.transport.sendToDevices = (...args) => {
      calls++;
      return sendToDevices(...args);
    };
    for (let i = 0; i < 10; i++)
      await sendPayload(b, a, { type: 'key-request', conversationId: 'g', ...placeOf(message) });
    await net.settled();
    expect(calls).toBe(1);
  });

  it("an edit's content fits only the message it edits, whatever the server answered", async () => {
    const net = createFakeNetwork();
    const [a, b] = [await net.device('alice'), await net.device('bob')];
    net.members('g', ['alice', 'bob']);
    const meeting = await send(a, 'g', 'meet at 5');
    const cats = await send(a, 'g', 'I like cats');
    await net.settled();
    // The server answers Alice's edit of "meet at 5" as if it were of her other message, and
    // shows Bob the edit's bytes as an edit of that one.
    const editMessage = a.editMessage;
    let moved: Message | undefined;
    a.editMessage = async (input) => {
      const real = await editMessage({ ...input });
      moved = { ...cats, ciphertext: real.ciphertext, editedAt: real.editedAt };
      return moved;
    };
    await edit(a, 'g', meeting.seq, 'meet at 9');
    await net.settled();
    net.event('bob', { type: 'message.updated', message: moved! });
    await net.settled();
    // Bob cannot read it as cats' edit (it is bound to the other seq), asks, and Alice's
    // answer names the seq she edited: it does not fit.
    expect(b.unreadable.map((u) => [u.message.seq, u.reason])).toEqual([
      [cats.seq, 'decrypt_failed'],
    ]);
    expect(b.read.filter((m) => m.message.seq === cats.seq).map((m) => decode(m.body))).toEqual([
      'I like cats',
    ]);
  });

  it("a message given another's id is read for what it is, not from what that one said", async () => {
    const net = createFakeNetwork();
    const [a, b, m] = [
      await net.device('alice'),
      await net.device('bob'),
      await net.device('mallory'),
    ];
    net.members('g', ['alice', 'bob']);
    net.members('h', ['bob', 'mallory']);
    const secret = await send(a, 'g', 'secret in g');
    await net.settled();
    // Mallory's own message in h, shown to Bob under the id of Alice's.
    const hers = await send(m, 'h', "mallory's");
    await net.settled();
    net.event('bob', { type: 'message.new', message: { ...hers, id: secret.id } });
    await net.settled();
    // A copy of Mallory's message (its place is used), not Alice's secret.
    expect(texts(b)).toEqual(['secret in g', "mallory's"]);
    expect(b.unreadable.map((u) => [u.message.conversationId, u.reason])).toEqual([
      ['h', 'decrypt_failed'],
    ]);
  });

  it('a request that comes before the send is answered is answered once it is', async () => {
    const net = createFakeNetwork();
    const [a, b] = [await net.device('alice'), await net.device('bob'), await net.device('carol')];
    net.members('g', ['alice', 'bob', 'carol']);
    // Bob's queue is full when Alice sends, and the answer to her send is slow to come back:
    // Bob gets the key with her next message, and asks for this one before she knows its id.
    net.holdAnswers(true);
    net.fill(b.deviceId, true);
    const early = await a.e2ee.send('g', { contentType: 'text/plain', body: encode('early') });
    await net.settled();
    net.fill(b.deviceId, false);
    await a.e2ee.send('g', { contentType: 'text/plain', body: encode('next') });
    await net.settled();
    expect(texts(b)).toEqual(['next']);
    net.holdAnswers(false);
    const stored = await early.result;
    await net.settled();
    expect(lateOf(b)).toEqual([['early', stored.id]]);
  });

  it('is answered after the sender restarts, from the send log the app persists', async () => {
    const { net, a, b, sendLog, keys } = await withSendLogAndLostShare();
    const missed = await send(a, 'g', 'before the restart');
    await net.settled();
    expect(b.unreadable).toEqual([{ message: missed, reason: 'missing_key' }]);
    expect(keys()).toEqual(['e.2', 'l.1']);

    // Alice's app restarts with its stores; Carol leaves, so her next send is under a new key.
    const restarted = await net.device('alice', a.deviceId, undefined, {
      store: a.e2ee.store,
      sendLog,
    });
    await askAgainOnceCarolLeft(net, restarted, b, missed);
    expect(lateOf(b)).toEqual([['before the restart', missed.id]]);
    expect([b.errors, restarted.errors]).toEqual([[], []]);
  });

  it('is answered for a send the outbox finished after the restart, from the entry queued before it', async () => {
    const { net, a, b, sendLog } = await withSendLogAndLostShare();
    const { restarted, result: message } = await restartBeforeTheAnswer(net, a, sendLog, () =>
      a.e2ee.send('g', { contentType: 'text/plain', body: encode('queued before the restart') }),
    );
    await askAgainOnceCarolLeft(net, restarted, b, message);
    expect(lateOf(b)).toEqual([['queued before the restart', message.id]]);
  });

  it('is answered for an edit the outbox finished after the restart, as the edit of the message it names', async () => {
    const { net, a, b, sendLog } = await withSendLogAndLostShare();
    const meeting = await send(a, 'g', 'meet at 8');
    const other = await send(a, 'g', 'bring cake');
    await net.settled();
    // The edit's answer, when it comes, names her other message.
    const editMessage = a.editMessage;
    a.editMessage = async (input) => ({ ...(await editMessage(input)), seq: other.seq });
    const { restarted } = await restartBeforeTheAnswer(net, a, sendLog, () =>
      a.e2ee.edit('g', meeting.seq, { contentType: 'text/plain', body: encode('meet at 9') }),
    );
    // Bob asks for the message as edited (its key share was lost): the log names the seq edited.
    const edited = net.message('g', meeting.seq)!;
    expect(edited.editedAt).not.toBeNull();
    await askAgainOnceCarolLeft(net, restarted, b, edited);
    expect(lateOf(b)).toEqual([
      ['meet at 8', meeting.id],
      ['bring cake', other.id],
      ['meet at 9', meeting.id],
    ]);
    expect(b.read.at(-1)).toMatchObject({ edited: true });
    expect([b.errors, restarted.errors]).toEqual([[], []]);
  });

  it('is answered for a send the outbox finished after the restart while the log was still loading', async () => {
    const { net, a, b, records } = await withSendLogAndLostShare();
    net.holdAnswers(true);
    const handle = await a.e2ee.send('g', {
      contentType: 'text/plain',
      body: encode('finished while loading'),
    });
    await net.settled();
    // The restarted app's log store (what the last process left) is slow to load, and the
    // outbox finishes the send meanwhile.
    const left = memoryLogStore(new Map(records));
    let release = () => undefined as void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const restarted = await net.device('alice', a.deviceId, undefined, {
      store: a.e2ee.store,
      sendLog: { ...left.store, load: () => gate.then(() => left.store.load()) },
    });
    net.holdAnswers(false);
    const message = await handle.result;
    await net.settled();
    release();
    await askAgainOnceCarolLeft(net, restarted, b, message);
    expect(lateOf(b)).toEqual([['finished while loading', message.id]]);
  });

  it('sends do not wait for a send log store that never loads', async () => {
    const net = createFakeNetwork();
    const sendLog: SendLogStore = {
      load: () => new Promise(() => undefined), // a locked keychain
      save: () => undefined,
      remove: () => undefined,
    };
    const a = await net.device('alice', undefined, undefined, { sendLog });
    const b = await net.device('bob');
    net.members('g', ['alice', 'bob']);
    await send(a, 'g', 'goes anyway');
    await net.settled();
    expect(texts(b)).toEqual(['goes anyway']);
  });

  it('a listed device id given other keys since is another device: it reads from now on', async () => {
    const net = createFakeNetwork();
    const [a] = [await net.device('alice'), await net.device('bob')];
    net.members('g', ['alice', 'bob']);
    const before = await send(a, 'g', 'before the swap');
    await net.settled();
    // The server lists Bob's phone with keys of its own (Bob is not verified: Alice is told).
    const swapped = await net.device('bob', 'bob-phone');
    net.keysChanged('alice', 'bob', 'bob-phone', 'changed');
    net.event('bob', { type: 'message.new', message: before });
    await net.settled();
    expect(swapped.unreadable.map((u) => u.reason)).toEqual(['missing_key', 'decrypt_failed']);
    expect(texts(swapped)).toEqual([]);
  });

  it('nothing is delivered late once it was deleted for everyone', async () => {
    const net = createFakeNetwork();
    const [a, b] = [await net.device('alice'), await net.device('bob'), await net.device('carol')];
    net.members('g', ['alice', 'bob', 'carol']);
    net.fill(b.deviceId, true);
    const gone = await send(a, 'g', 'deleted before Bob read it');
    await net.settled();
    net.fill(b.deviceId, false);
    // Bob hears of the deletion (Alice's device does not, say, yet), then gets the key.
    net.event('bob', {
      type: 'message.updated',
      message: { ...gone, ciphertext: null, deletedAt: new Date(0).toISOString() },
    });
    await send(a, 'g', 'next');
    await net.settled();
    expect(texts(b)).toEqual(['next']);
    expect(b.sent.filter((e) => e.userId === 'alice')).toHaveLength(1); // the key request only
  });

  it('a message gone by its timer on this device is neither asked for nor delivered late', async () => {
    const expired = new Set<(e: ExpiredMessage) => void>();
    const time = {
      now: Date.now,
      onExpired: (handler: (e: ExpiredMessage) => void) => {
        expired.add(handler);
        return { unsubscribe: () => void expired.delete(handler) };
      },
    };
    const net = createFakeNetwork();
    const [a, b] = [
      await net.device('alice'),
      await net.device('bob', 'bob-phone', time),
      await net.device('carol'),
    ];
    net.members('g', ['alice', 'bob', 'carol']);
    net.fill(b.deviceId, true);
    const gone = await send(a, 'g', 'gone before Bob got the key');
    await net.settled();
    net.fill(b.deviceId, false);
    // Bob's own timer says it expired (the server's removal has not come).
    for (const handler of expired)
      handler({ conversationId: 'g', seq: gone.seq, messageId: gone.id });
    await send(a, 'g', 'next');
    await net.settled();
    expect(texts(b)).toEqual(['next']);
    expect(b.sent.filter((e) => e.userId === 'alice')).toHaveLength(1); // the key request only
  });

  it('a copy read first when the key comes does not make the original come again', async () => {
    const net = createFakeNetwork();
    const [a, b] = [await net.device('alice'), await net.device('bob')];
    net.members('g', ['alice', 'bob']);
    net.lose((e) => !(e.sender.userId === 'alice' && e.userId === 'bob'));
    const original = await send(a, 'g', 'hello once');
    await net.settled();
    // The server shows Bob a copy of it, before it, while he has no key.
    net.event('bob', { type: 'message.new', message: { ...original, id: 'copy', seq: 0 } });
    await net.settled();
    net.lose(() => true);
    passTime(KEY_ANSWER_EVERY_MS);
    expect(await b.e2ee.retry(original)).toBe(false);
    await net.settled();
    expect(texts(b)).toEqual(['hello once']);
  });

  it("a copy shown and asked for before the original does not keep the original's content from it", async () => {
    const net = createFakeNetwork();
    const [a, b] = [await net.device('alice'), await net.device('bob'), await net.device('carol')];
    net.members('g', ['alice', 'bob', 'carol']);
    // Bob's key share is lost, and the server holds the message back from him.
    net.lose((e) => !(e.sender.userId === 'alice' && e.userId === 'bob'));
    net.withhold((deviceId, e) => deviceId === b.deviceId && e.type === 'message.new');
    const original = await send(a, 'g', 'the original');
    await net.settled();
    // Carol leaves, so the key is replaced. The server shows Bob a copy of the bytes first.
    net.lose(() => true);
    net.members('g', ['alice', 'bob']);
    await send(a, 'g', 'after');
    const copy = { ...original, id: 'copy', seq: 0 };
    net.withhold(() => false);
    net.event('bob', { type: 'message.new', message: copy });
    await net.settled();
    passTime(KEY_ANSWER_EVERY_MS);
    expect(await b.e2ee.retry(copy)).toBe(false); // asks for the key, then for the copy's place
    await net.settled();
    expect(lateOf(b)).toEqual([]); // Alice answered for the original: not the copy's
    // The original comes now: its content is here already, without asking Alice again.
    const asked = b.sent.length;
    net.release();
    await net.settled();
    expect(lateOf(b)).toEqual([['the original', original.id]]);
    expect(b.sent.slice(asked).filter((e) => e.userId === 'alice')).toEqual([]);
  });

  it('a place this device has read is neither asked for nor delivered again, whatever bytes the server shows there', async () => {
    const net = createFakeNetwork();
    const [a, b] = [await net.device('alice'), await net.device('bob')];
    net.members('g', ['alice', 'bob']);
    const meeting = await send(a, 'g', 'meet at 8');
    const edited = await edit(a, 'g', meeting.seq, 'meet at 9');
    await net.settled();
    expect(texts(b)).toEqual(['meet at 8', 'meet at 9']);
    const asked = b.sent.length;
    // The server shows the edit's bytes as another message (they fail: the edit is bound to
    // its seq), then the edit again with a bit changed (it fails too), then the first message
    // with a bit changed. Bob asks Alice for none of them and is shown none again.
    net.event('bob', { type: 'message.new', message: { ...edited, id: 'copy', seq: 99 } });
    net.event('bob', { type: 'message.updated', message: flipped(edited) });
    net.event('bob', { type: 'message.new', message: flipped(meeting) });
    await net.settled();
    expect(b.sent.slice(asked)).toEqual([]);
    expect(lateOf(b)).toEqual([]);
    expect(texts(b)).toEqual(['meet at 8', 'meet at 9']);
  });

  it('what a device read stays read when its app restarts: a replay is neither asked for nor shown', async () => {
    const net = createFakeNetwork();
    const [a, b] = [await net.device('alice'), await net.device('bob')];
    net.members('g', ['alice', 'bob']);
    const meeting = await send(a, 'g', 'meet at 8');
    await net.settled();
    expect(texts(b)).toEqual(['meet at 8']);

    const restarted = await net.device('bob', b.deviceId, undefined, { store: b.e2ee.store });
    net.event('bob', { type: 'message.new', message: meeting });
    net.event('bob', { type: 'message.new', message: flipped(meeting) });
    await net.settled();
    expect(restarted.sent).toEqual([]);
    expect(restarted.read).toEqual([]);
    expect(restarted.unreadable.map((u) => u.reason)).toEqual(['decrypt_failed', 'decrypt_failed']);
    expect(await restarted.e2ee.retry(meeting)).toBe(false);
    await net.settled();
    expect([restarted.sent, restarted.read]).toEqual([[], []]);
  });

  it('a message the app did not keep (it stopped while handling it) is asked for after the restart', async () => {
    const net = createFakeNetwork();
    const [a, b] = [await net.device('alice'), await net.device('bob')];
    net.members('g', ['alice', 'bob']);
    b.e2ee.onMessage(() => {
      throw new Error('the app stops here');
    });
    const message = await send(a, 'g', 'keep me');
    await net.settled();

    // Its cursor did not move past the event: the restarted app gets it again.
    const restarted = await net.device('bob', b.deviceId, undefined, { store: b.e2ee.store });
    net.event('bob', { type: 'message.new', message });
    await net.settled();
    expect(lateOf(restarted)).toEqual([['keep me', message.id]]);
    // Kept now: a copy of it elsewhere is neither asked for nor shown.
    const sent = restarted.sent.length;
    net.event('bob', { type: 'message.new', message: { ...message, id: 'copy', seq: 99 } });
    await net.settled();
    expect([restarted.read.length, restarted.sent.length]).toEqual([1, sent]);
  });

  it('resent content whose read the store failed to note is not shown again when the real bytes come', async () => {
    const { store, failNextPut } = storeFailingOnce();
    const { net, a, b } = await aliceAndBobKeepingIn(store);
    let holding = true;
    net.withhold((deviceId, e) => holding && deviceId === b.deviceId && e.type === 'message.new');
    const meeting = await send(a, 'g', 'meet at 8');
    await net.settled();
    holding = false;
    // A changed copy first: asked for, and its content comes resent; noting it read fails.
    b.e2ee.onMessage((m) => void (m.late && failNextPut()));
    net.event('bob', { type: 'message.new', message: flipped(meeting) });
    await net.settled();
    expect(lateOf(b)).toEqual([['meet at 8', meeting.id]]);
    expect(b.errors.map((e) => (e as Error).message)).toEqual(['disk full']);
    // The real bytes, whose key the record still holds: not shown a second time.
    net.release();
    await net.settled();
    expect(texts(b)).toEqual(['meet at 8']);
  });

  it('a sender key record that does not read is reported with the message; the stream goes on', async () => {
    const store = createMemoryStore();
    const get = store.getInboundSenderKey.bind(store);
    let broken = false;
    store.getInboundSenderKey = async (conversationId, sender, keyId) => {
      if (broken && conversationId === 'g') throw new CryptoError('MALFORMED', 'bad record');
      return get(conversationId, sender, keyId);
    };
    const { net, a, b } = await aliceAndBobKeepingIn(store);
    net.members('h', ['alice', 'bob']);
    await send(a, 'g', 'one');
    await net.settled();
    broken = true;
    const two = await send(a, 'g', 'two');
    await send(a, 'h', 'elsewhere');
    await net.settled();
    expect(b.unreadable).toEqual([{ message: two, reason: 'decrypt_failed' }]);
    expect(b.errors.map((e) => (e as Error).message)).toContain('bad record');
    // Not known read, so asked for: its content comes from Alice.
    expect(texts(b)).toEqual(['one', 'elsewhere', 'two']);
    expect(lateOf(b)).toEqual([['two', two.id]]);
  });

  it('a store that fails to note a place read is reported; the message is not handed over again', async () => {
    const { store, failNextPut } = storeFailingOnce();
    const { net, a, b } = await aliceAndBobKeepingIn(store);
    b.e2ee.onMessage(() => void failNextPut()); // the next write is the note
    const message = await send(a, 'g', 'once');
    await net.settled();
    expect(texts(b)).toEqual(['once']);
    expect(b.errors.map((e) => (e as Error).message)).toEqual(['disk full']);
    // Remembered here instead: a copy elsewhere is neither asked for nor shown.
    net.event('bob', { type: 'message.new', message: { ...message, id: 'copy', seq: 99 } });
    await net.settled();
    expect([texts(b), b.sent]).toEqual([['once'], []]);
  });

  it('content resent for a place is never shown again, when the real bytes come or after a restart', async () => {
    const net = createFakeNetwork();
    const [a, b] = [await net.device('alice'), await net.device('bob')];
    net.members('g', ['alice', 'bob']);
    // Bob holds Alice's key, but the server shows him her message with a bit changed first:
    // he asks for it, and Alice sends its content.
    let holding = true;
    net.withhold((deviceId, e) => holding && deviceId === b.deviceId && e.type === 'message.new');
    const meeting = await send(a, 'g', 'meet at 8');
    await net.settled();
    holding = false;
    net.event('bob', { type: 'message.new', message: flipped(meeting) });
    await net.settled();
    expect(b.unreadable.map((u) => u.reason)).toEqual(['decrypt_failed']);
    expect(lateOf(b)).toEqual([['meet at 8', meeting.id]]);

    // The real bytes, then the same after Bob's app restarts: read already.
    net.release();
    await net.settled();
    const restarted = await net.device('bob', b.deviceId, undefined, { store: b.e2ee.store });
    net.event('bob', { type: 'message.new', message: meeting });
    await net.settled();
    expect(texts(b)).toEqual(['meet at 8']);
    expect([restarted.read, restarted.sent]).toEqual([[], []]);
  });

  it('content resent while its key was not held stays read when the key comes late and the app restarts', async () => {
    const net = createFakeNetwork();
    const [a, b] = [await net.device('alice'), await net.device('bob'), await net.device('carol')];
    net.members('g', ['alice', 'bob', 'carol']);
    // Alice's key shares to Bob are lost (the first kept aside); Carol leaves, so the key Bob
    // waits for is gone and he is sent the message itself.
    const lost: { contentType: string; ciphertext: string }[] = [];
    net.lose((e) => {
      if (e.sender.userId !== 'alice' || e.userId !== 'bob') return true;
      lost.push(e);
      return false;
    });
    const missed = await send(a, 'g', 'before carol left');
    await net.settled();
    await askAgainOnceCarolLeft(net, a, b, missed);
    expect(lateOf(b)).toEqual([['before carol left', missed.id]]);

    // The first share comes after all; then Bob's app restarts and is shown the real bytes.
    const [share] = lost;
    net.event('bob', {
      type: 'envelope',
      envelope: {
        id: 'late-share',
        senderId: a.userId,
        senderDeviceId: a.deviceId,
        contentType: share!.contentType,
        ciphertext: base64ToBytes(share!.ciphertext),
        sentAt: new Date(0).toISOString(),
        conversationId: 'g',
      },
    });
    await net.settled();
    const restarted = await net.device('bob', b.deviceId, undefined, { store: b.e2ee.store });
    net.event('bob', { type: 'message.new', message: missed });
    await net.settled();
    expect(texts(b)).toEqual(['after', 'before carol left']);
    expect([restarted.read, restarted.sent]).toEqual([[], []]);
    expect([b.errors, restarted.errors]).toEqual([[], []]);
  });

  it('names at most 100 messages per request, and whole iterations only', () => {
    const request = (iterations: unknown) =>
      new TextEncoder().encode(JSON.stringify({ v: 1, t: 'rr', c: 'g', k: 'k', i: iterations }));
    const ok = Array.from({ length: MAX_RESEND_ITERATIONS }, (_, i) => i);
    expect(decodeDevicePayload(request(ok))).toEqual({
      type: 'resend-request',
      conversationId: 'g',
      keyId: 'k',
      iterations: ok,
    });
    for (const bad of [[], [...ok, 100], [1.5], [-1], ['1'], 'x'])
      expect(() => decodeDevicePayload(request(bad))).toThrow(CryptoError);
  });

  it('takes a resend only with a whole iteration, a message id and seq, and an edit time or null', () => {
    const resend = (fields: object) =>
      new TextEncoder().encode(
        JSON.stringify({
          v: 1,
          t: 'rs',
          c: 'g',
          k: 'k',
          i: 3,
          m: 'm1',
          s: 7,
          e: null,
          d: 'AQ==',
          ...fields,
        }),
      );
    expect(decodeDevicePayload(resend({}))).toMatchObject({
      type: 'resend',
      iteration: 3,
      messageId: 'm1',
      seq: 7,
      editedAt: null,
    });
    for (const bad of [{ s: 0 }, { s: 1.5 }, { i: -1 }, { m: 1 }, { e: 5 }, { d: 3 }, { k: null }])
      expect(() => decodeDevicePayload(resend(bad))).toThrow(CryptoError);
  });
});

/** A `SendLogStore` over a map, and the keys it holds, sorted. */
function memoryLogStore(records = new Map<string, string>()) {
  const store: SendLogStore = {
    load: () => [...records].map(([key, value]) => ({ key, value })),
    save: (key, value) => void records.set(key, value),
    remove: (key) => void records.delete(key),
  };
  const keys = () => [...records.keys()].sort();
  return { records, store, keys };
}

const storedAs = (seq: number) => ({
  id: `m${seq}`,
  seq,
  editedAt: null,
  expiresAt: null,
});

describe('the send log', () => {
  it('persists an entry once its message is stored, one list for sends to the same devices, and reads them back', async () => {
    const { store, keys } = memoryLogStore();
    const log = createSendLog(() => 1000, { store });
    await log.ready;
    const group = new Set(['alice:1 ka', 'bob:1 kb']);
    const first = log.record('g', 'k', 0, encode('one'), group);
    const second = log.record('g', 'k', 1, encode('two'), new Set(group));
    await log.written();
    expect(keys()).toEqual([]); // not before it is queued in the outbox or answered
    log.stored(first, storedAs(1));
    log.stored(second, storedAs(2));
    log.stored(log.record('d', 'k2', 0, encode('three'), new Set(['carol:1 kc'])), storedAs(1));
    await log.written();
    expect(keys()).toEqual(['e.2', 'e.3', 'e.5', 'l.1', 'l.4']);

    const again = createSendLog(() => 2000, { store });
    await again.ready;
    const loaded = again.find('g', 'k', 1)!;
    expect([decode(loaded.content), [...loaded.devices], loaded.message, loaded.at]).toEqual([
      'two',
      [...group],
      storedAs(2),
      1000,
    ]);
    expect([again.usedKey('d', 'k2'), again.usedKey('d', 'other')]).toEqual([true, false]);
    // The loaded list goes on being shared; a deleted message goes from the store, and a list
    // once nothing uses it.
    again.stored(again.record('g', 'k', 2, encode('four'), new Set(group)), storedAs(3));
    again.forget('d', [1]);
    again.forget('g', [1, 2]);
    await again.written();
    expect(keys()).toEqual(['e.6', 'l.1']);
    expect(again.find('g', 'k', 0)).toBeUndefined();
  });

  it('leaves in the store nothing older than a day, unreadable, or unused', async () => {
    const now = 5 * SEND_LOG_MAX_AGE_MS;
    const entry = (list: string, at: number) =>
      JSON.stringify({
        v: 1,
        conversationId: 'g',
        keyId: 'k',
        iteration: at % 1000,
        content: bytesToBase64(encode('hi')),
        list,
        at,
        message: storedAs(1),
      });
    const { store, keys } = memoryLogStore(
      new Map([
        ['l.1', JSON.stringify({ v: 1, devices: ['bob:1 kb'] })],
        ['l.2', JSON.stringify({ v: 1, devices: ['carol:1 kc'] })], // used by nothing
        ['l.3', '{"v":1}'],
        ['e.4', entry('l.1', now - 1)],
        ['e.5', entry('l.1', now - SEND_LOG_MAX_AGE_MS - 1)], // older than a day
        ['e.6', 'not json'],
        ['e.7', entry('l.9', now - 2)], // its list is gone
        ['e.8', JSON.stringify({ ...JSON.parse(entry('l.1', now - 3)), message: { id: 1 } })],
        // No message yet: only for a send queued in the outbox, which names it later.
        ['e.9', JSON.stringify({ ...JSON.parse(entry('l.1', now - 4)), message: null })],
        [
          'e.10',
          JSON.stringify({
            ...JSON.parse(entry('l.1', now - 5)),
            message: null,
            clientMessageId: 'c1',
          }),
        ],
      ]),
    );
    const errors: unknown[] = [];
    const log = createSendLog(() => now, { store, report: (e) => errors.push(e) });
    await log.ready;
    await log.written();
    expect(keys()).toEqual(['e.10', 'e.4', 'l.1']);
    expect(decode(log.find('g', 'k', (now - 1) % 1000)!.content)).toBe('hi');
    expect(log.queuedAs('c1')).toBe(log.find('g', 'k', (now - 5) % 1000));
    // New records never reuse a key held or named.
    log.stored(log.record('g', 'k', 7, encode('new'), new Set(['dave:1 kd'])), storedAs(2));
    await log.written();
    expect(keys()).toEqual(['e.10', 'e.12', 'e.4', 'l.1', 'l.11']);
    expect(errors).toEqual([]);
  });

  it('a slow load delays no send; what is deleted meanwhile, expired or too big is not kept', async () => {
    let now = 10 * SEND_LOG_MAX_AGE_MS;
    const { store, keys } = memoryLogStore();
    const first = createSendLog(() => now, { store });
    const devices = new Set(['bob:1 kb']);
    first.stored(first.record('g', 'k', 0, encode('deleted later'), devices), storedAs(1));
    first.stored(first.record('g', 'k', 1, encode('kept'), devices), storedAs(2));
    const expiring = { ...storedAs(3), expiresAt: new Date(now + 60_000).toISOString() };
    first.stored(first.record('g', 'k', 2, encode('disappearing'), devices), expiring);
    const big = encode('x'.repeat(RESEND_MAX_CONTENT_BYTES + 1));
    first.stored(first.record('g', 'k', 3, big, devices), storedAs(4));
    await first.written();
    expect(keys()).toEqual(['e.2', 'e.3', 'e.4', 'l.1']); // not the big one

    let release = () => undefined as void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const slow = createSendLog(() => now, {
      store: { ...store, load: () => gate.then(() => store.load()) },
    });
    // Sends go on while it loads, and a deletion is told.
    const during = slow.record('g', 'k2', 0, encode('during'), devices);
    slow.stored(during, storedAs(5));
    slow.forget('g', [1]);
    now += 120_000; // the disappearing one is gone by its timer
    await slow.readyWithin(1);
    expect(slow.find('g', 'k2', 0)).toBe(during);
    expect(keys()).toEqual(['e.2', 'e.3', 'e.4', 'l.1']); // nothing written yet
    release();
    await slow.ready;
    await slow.written();
    // The send made during the load is saved after it, under keys the store did not hold.
    expect(keys()).toEqual(['e.3', 'e.6', 'l.1', 'l.5']);
    expect([slow.find('g', 'k', 0), slow.find('g', 'k', 2)]).toEqual([undefined, undefined]);
    expect(decode(slow.find('g', 'k', 1)!.content)).toBe('kept');

    // A day later the next send drops the rest, from the store too, without being asked.
    now += SEND_LOG_MAX_AGE_MS;
    slow.record('g', 'k2', 1, encode('next'), devices);
    await slow.written();
    expect(keys()).toEqual([]);
  });

  it('an entry whose content is not base64 is removed; the others load', async () => {
    const entry = (content: string, iteration: number) =>
      JSON.stringify({
        v: 1,
        conversationId: 'g',
        keyId: 'k',
        iteration,
        content,
        list: 'l.1',
        at: 0,
        message: storedAs(iteration + 1),
      });
    const { store, keys } = memoryLogStore(
      new Map([
        ['l.1', JSON.stringify({ v: 1, devices: ['bob:1 kb'] })],
        ['e.2', entry('not base64!', 0)],
        ['e.3', entry(bytesToBase64(encode('fine')), 1)],
      ]),
    );
    const errors: unknown[] = [];
    const log = createSendLog(() => 0, { store, report: (e) => errors.push(e) });
    await log.written();
    expect([keys(), errors]).toEqual([['e.3', 'l.1'], []]);
    expect(decode(log.find('g', 'k', 1)!.content)).toBe('fine');
  });

  it('removes from the store what its bounds drop', async () => {
    const { store, keys } = memoryLogStore();
    const log = createSendLog(() => 0, { store });
    await log.ready;
    const devices = new Set(['bob:1 kb']);
    for (let i = 0; i <= SEND_LOG_MAX_ENTRIES; i++)
      log.stored(log.record('g', 'k', i, encode(`${i}`), devices), storedAs(i + 1));
    await log.written();
    expect(keys()).toHaveLength(SEND_LOG_MAX_ENTRIES + 1); // the entries kept, and their list
    expect(keys()).not.toContain('e.2'); // the first entry's
  });

  it('works in memory only when the store fails to load (its keys unknown), and reports it', async () => {
    const errors: unknown[] = [];
    const { store, keys } = memoryLogStore();
    const log = createSendLog(() => 0, {
      store: { ...store, load: () => Promise.reject(new Error('locked')) },
      report: (e) => errors.push(e),
    });
    await log.ready;
    const sent = log.record('g', 'k', 0, encode('x'), new Set());
    log.stored(sent, storedAs(1));
    await log.written();
    expect(log.find('g', 'k', 0)).toBe(sent);
    expect([errors.length, keys()]).toEqual([1, []]);
  });

  it('forgets entries after a day, and keeps one device list while the devices stay', () => {
    let now = 0;
    const log = createSendLog(() => now);
    const content = new Uint8Array([1]);
    const first = log.record('g', 'k', 0, content, new Set(['alice:1', 'bob:1']));
    const second = log.record('g', 'k', 1, content, new Set(['bob:1', 'alice:1']));
    expect(second.devices).toBe(first.devices);
    now = 1000;
    expect(log.record('g', 'k', 2, content, new Set(['alice:1'])).devices).not.toBe(first.devices);
    now = SEND_LOG_MAX_AGE_MS;
    expect(log.find('g', 'k', 0)).toBe(first);
    now = SEND_LOG_MAX_AGE_MS + 1;
    expect(log.find('g', 'k', 0)).toBeUndefined();
    expect(log.find('g', 'k', 2)).toBeDefined();
  });
});
