import { CryptoError, encryptToDevice, parseSenderKeyMessage, toBase64 } from '@mvp/crypto';
import { describe, expect, it } from 'vitest';
import { bytesToBase64 } from '../base64';
import type { Message } from '../messaging';
import {
  createFakeNetwork,
  decode,
  encode,
  send,
  texts,
  type FakeDevice,
} from './fakeNetwork.testing';
import {
  E2EE_DEVICE_CONTENT_TYPE,
  MAX_RESEND_ITERATIONS,
  addressOf,
  decodeDevicePayload,
  encodeContent,
  encodeDevicePayload,
} from './payloads';
import { SEND_LOG_MAX_AGE_MS, createSendLog } from './sendLog';

const placeOf = (message: Message) => {
  const { keyId, iteration } = parseSenderKeyMessage(message.ciphertext!);
  return { keyId: toBase64(keyId), iteration };
};

/** What a device's app was handed late, as text and message id. */
const lateOf = (d: FakeDevice) =>
  d.read.filter((m) => m.late).map((m) => [decode(m.body), m.message.id]);

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
    // used them, so he asks Alice for the content of that place in her chain.
    const copy = { ...original, id: 'copy', seq: 99 };
    net.event('bob', { type: 'message.new', message: copy });
    await net.settled();
    expect(b.unreadable).toEqual([{ message: copy, reason: 'decrypt_failed' }]);
    expect(b.sent.at(-1)).toMatchObject({ userId: 'alice', contentType: E2EE_DEVICE_CONTENT_TYPE });
    // Alice answers with the original's id: it does not fit the copy.
    expect(a.sent.at(-1)).toMatchObject({ userId: 'bob', contentType: E2EE_DEVICE_CONTENT_TYPE });
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
    // as it is then: he asks for the earlier one as content, and her answer is lost.
    net.fill(b.deviceId, true);
    const lost = await send(a, 'g', 'the real text');
    await net.settled();
    net.fill(b.deviceId, false);
    let passed = 0;
    net.lose((e) => !(e.sender.userId === 'alice' && e.userId === 'bob') || passed++ < 1);
    await send(a, 'g', 'next');
    await net.settled();
    expect(b.unreadable.map((u) => [u.message.id, u.reason])).toEqual([
      [lost.id, 'missing_key'],
      [lost.id, 'decrypt_failed'],
    ]);
    net.lose(() => true);
    // Carol, another member, sends Bob "the content" of Alice's message.
    const forged = encodeDevicePayload({
      type: 'resend',
      conversationId: 'g',
      ...placeOf(lost),
      messageId: lost.id,
      editedAt: null,
      content: encodeContent({ contentType: 'text/plain', body: encode('forged') }),
    });
    const bob = addressOf('bob', b.deviceId);
    await c.transport.sendToDevices(
      [
        {
          userId: 'bob',
          deviceId: b.deviceId,
          contentType: E2EE_DEVICE_CONTENT_TYPE,
          ciphertext: bytesToBase64(await encryptToDevice(c.e2ee.store, bob, forged)),
        },
      ],
      false,
      'g',
    );
    await net.settled();
    expect(texts(b)).toEqual(['carol was here', 'next']);
    // Alice's own answer, when it comes, is read.
    expect(await b.e2ee.retry(lost)).toBe(false);
    await net.settled();
    expect(lateOf(b)).toEqual([['the real text', lost.id]]);
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
});

describe('the send log', () => {
  it('forgets entries after a day, and keeps one member list while the members stay', () => {
    let now = 0;
    const log = createSendLog(() => now);
    const content = new Uint8Array([1]);
    const first = log.record('g', 'k', 0, content, ['alice', 'bob']);
    const second = log.record('g', 'k', 1, content, ['bob', 'alice']);
    expect(second.members).toBe(first.members);
    now = 1000;
    expect(log.record('g', 'k', 2, content, ['alice']).members).not.toBe(first.members);
    now = SEND_LOG_MAX_AGE_MS;
    expect(log.find('g', 'k', 0)).toBe(first);
    now = SEND_LOG_MAX_AGE_MS + 1;
    expect(log.find('g', 'k', 0)).toBeUndefined();
    expect(log.find('g', 'k', 2)).toBeDefined();
  });
});
