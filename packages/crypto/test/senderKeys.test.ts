import { describe, expect, it } from 'vitest';
import {
  type InboundSenderKey,
  createSenderKey,
  deserializeInboundSenderKey,
  groupDecrypt,
  groupEncrypt,
  isCryptoError,
  MAX_READ_RANGES,
  processSenderKeyDistribution,
  retireSenderKey,
  rotateSenderKey,
  senderKeyDistribution,
  serializeInboundSenderKey,
  withRead,
} from '../src/index.js';
import { flip, str, text } from './helpers.js';

const context = text('conversation-1|alice:device-1');

function code(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    if (isCryptoError(error)) return error.code;
    throw error;
  }
  return undefined;
}

function sendAll(count: number, startKey = createSenderKey()) {
  let key = startKey;
  const messages: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    const out = groupEncrypt(key, text(`group ${i}`), context);
    key = out.senderKey;
    messages.push(out.message);
  }
  return { key, messages };
}

describe('sender keys', () => {
  it('one ciphertext is read by every member holding the distribution', () => {
    const alice = createSenderKey();
    const distribution = senderKeyDistribution(alice);
    const bob = processSenderKeyDistribution(distribution);
    const carol = processSenderKeyDistribution(distribution);
    const { message } = groupEncrypt(alice, text('to all'), context);
    expect(str(groupDecrypt(bob, message, context).plaintext)).toBe('to all');
    expect(str(groupDecrypt(carol, message, context).plaintext)).toBe('to all');
  });

  it('out-of-order delivery within the window, replays refused', () => {
    const alice = createSenderKey();
    let bob: InboundSenderKey = processSenderKeyDistribution(senderKeyDistribution(alice));
    const { messages } = sendAll(6, alice);
    for (const i of [5, 2, 0, 4]) {
      const out = groupDecrypt(bob, messages[i]!, context);
      bob = i === 4 ? out.senderKey : withRead(out.senderKey, i); // 4 not noted read
      expect(str(out.plaintext)).toBe(`group ${i}`);
    }
    expect(bob.skipped.map((s) => s.iteration)).toEqual([1, 3]);
    for (const i of [5, 2, 0]) {
      expect(code(() => groupDecrypt(bob, messages[i]!, context))).toBe('DUPLICATE_MESSAGE');
    }
    // Decrypted but never noted read (the app stopped before it kept it): asked for again.
    expect(code(() => groupDecrypt(bob, messages[4]!, context))).toBe('MESSAGE_KEY_GONE');
  });

  it('keeps what it read as ranges: a replay is a duplicate, a key passed over unread is gone', () => {
    const alice = createSenderKey();
    let bob = processSenderKeyDistribution(senderKeyDistribution(alice));
    const { messages } = sendAll(8, alice);
    const read = (i: number) => withRead(groupDecrypt(bob, messages[i]!, context).senderKey, i);
    for (const i of [0, 1, 2, 5, 4, 7]) bob = read(i);
    expect(bob.read).toEqual([
      [0, 3],
      [4, 6],
      [7, 8],
    ]);
    bob = read(3);
    expect(bob.read).toEqual([
      [0, 6],
      [7, 8],
    ]);
    for (const i of [0, 3, 5, 7])
      expect(code(() => groupDecrypt(bob, messages[i]!, context))).toBe('DUPLICATE_MESSAGE');
    // 6's key waits; dropped (retired), it is gone rather than read.
    expect(code(() => groupDecrypt(retireSenderKey(bob), messages[6]!, context))).toBe(
      'MESSAGE_KEY_GONE',
    );
    expect(code(() => groupDecrypt(retireSenderKey(bob), messages[5]!, context))).toBe(
      'DUPLICATE_MESSAGE',
    );
    // What it read survives serialization, and records from before it read nothing.
    const restored = deserializeInboundSenderKey(serializeInboundSenderKey(bob));
    expect(restored.read).toEqual(bob.read);
    expect(code(() => groupDecrypt(restored, messages[4]!, context))).toBe('DUPLICATE_MESSAGE');
    const old = JSON.parse(serializeInboundSenderKey(bob)) as { read?: unknown };
    delete old.read;
    expect(deserializeInboundSenderKey(JSON.stringify(old)).read).toEqual([]);
    // A store that keeps objects as written hands older records back without the field.
    const { read: _read, ...kept } = bob;
    expect(code(() => groupDecrypt(kept, messages[6]!, context))).toBeUndefined();
    expect(withRead(kept, 6).read).toEqual([[6, 7]]);
  });

  it('keeps at most MAX_READ_RANGES read ranges, forgetting the oldest', () => {
    const alice = createSenderKey();
    let bob = processSenderKeyDistribution(senderKeyDistribution(alice));
    const { messages } = sendAll(2 * MAX_READ_RANGES + 4, alice);
    // Every other message: one range each.
    for (let i = 0; i < messages.length; i += 2)
      bob = withRead(groupDecrypt(bob, messages[i]!, context).senderKey, i);
    expect(bob.read).toHaveLength(MAX_READ_RANGES);
    expect(bob.read![0]).toEqual([4, 5]);
    expect(code(() => groupDecrypt(bob, messages[0]!, context))).toBe('MESSAGE_KEY_GONE');
    expect(code(() => groupDecrypt(bob, messages[4]!, context))).toBe('DUPLICATE_MESSAGE');
    // A place older than every range read now is kept, and an older range goes for it.
    bob = withRead(groupDecrypt(bob, messages[1]!, context).senderKey, 1);
    expect(bob.read!.slice(0, 2)).toEqual([
      [1, 2],
      [6, 7],
    ]);
    expect(code(() => groupDecrypt(bob, messages[1]!, context))).toBe('DUPLICATE_MESSAGE');
    // A record holding more ranges than the bound (written by hand) keeps the place just read.
    const crowded = {
      ...bob,
      read: Array.from({ length: MAX_READ_RANGES + 3 }, (_, i): [number, number] => [
        10 * i + 10,
        10 * i + 11,
      ]),
    };
    expect(withRead(crowded, 25).read).toHaveLength(MAX_READ_RANGES);
    expect(withRead(crowded, 25).read![0]).toEqual([25, 26]);
  });

  it('the window is bounded: too far ahead refused, oldest skipped keys forgotten', () => {
    const alice = createSenderKey();
    let bob = processSenderKeyDistribution(senderKeyDistribution(alice));
    const { messages } = sendAll(12, alice);
    const limits = { maxForward: 8, maxSkippedKeys: 4 };
    expect(code(() => groupDecrypt(bob, messages[9]!, context, limits))).toBe('TOO_MANY_SKIPPED');
    bob = groupDecrypt(bob, messages[8]!, context, limits).senderKey;
    expect(bob.skipped.map((s) => s.iteration)).toEqual([4, 5, 6, 7]);
    expect(code(() => groupDecrypt(bob, messages[1]!, context, limits))).toBe('MESSAGE_KEY_GONE');
    expect(str(groupDecrypt(bob, messages[6]!, context, limits).plaintext)).toBe('group 6');
  });

  it('rejects a tampered signature, body, header or context', () => {
    const alice = createSenderKey();
    const bob = processSenderKeyDistribution(senderKeyDistribution(alice));
    const { message } = groupEncrypt(alice, text('signed'), context);
    expect(code(() => groupDecrypt(bob, flip(message, -1), context))).toBe('BAD_SIGNATURE');
    expect(code(() => groupDecrypt(bob, flip(message, -70), context))).toBe('BAD_SIGNATURE');
    expect(code(() => groupDecrypt(bob, flip(message, 20), context))).toBe('BAD_SIGNATURE');
    expect(code(() => groupDecrypt(bob, message, text('another conversation')))).toBe(
      'BAD_SIGNATURE',
    );
    expect(code(() => groupDecrypt(bob, flip(message, 0), context))).toBe('UNKNOWN_VERSION');
  });

  it('a member holding the chain key cannot forge messages without the signing key', () => {
    const alice = createSenderKey();
    const bob = processSenderKeyDistribution(senderKeyDistribution(alice));
    // Mallory, a member, re-signs a message with her own key under Alice's chain.
    const forger = { ...alice, signing: createSenderKey().signing };
    const { message } = groupEncrypt(forger, text('forged'), context);
    expect(code(() => groupDecrypt(bob, message, context))).toBe('BAD_SIGNATURE');
  });

  it('a removed member cannot decrypt messages after rotation', () => {
    const first = createSenderKey();
    const distribution = senderKeyDistribution(first);
    let bob = processSenderKeyDistribution(distribution);
    let carol = processSenderKeyDistribution(distribution); // removed later
    const before = groupEncrypt(first, text('before'), context);
    bob = groupDecrypt(bob, before.message, context).senderKey;
    carol = groupDecrypt(carol, before.message, context).senderKey;

    const second = rotateSenderKey();
    bob = processSenderKeyDistribution(senderKeyDistribution(second)); // only Bob gets it
    const after = groupEncrypt(second, text('after carol left'), context);
    expect(str(groupDecrypt(bob, after.message, context).plaintext)).toBe('after carol left');
    expect(code(() => groupDecrypt(carol, after.message, context))).toBe('UNKNOWN_KEY');
    // Even pretending the new message is under her old key id, she has neither chain nor signer.
    const relabelled = after.message.slice();
    relabelled.set(first.keyId, 2);
    expect(code(() => groupDecrypt(carol, relabelled, context))).toBe('BAD_SIGNATURE');
  });

  it('a late joiner cannot read messages sent before its distribution', () => {
    const { key, messages } = sendAll(3);
    const dave = processSenderKeyDistribution(senderKeyDistribution(key));
    expect(code(() => groupDecrypt(dave, messages[0]!, context))).toBe('MESSAGE_KEY_GONE');
  });

  it('inbound state survives serialization; distributions refuse unknown versions', () => {
    const alice = createSenderKey();
    let bob = processSenderKeyDistribution(senderKeyDistribution(alice));
    const { messages } = sendAll(3, alice);
    bob = groupDecrypt(bob, messages[2]!, context).senderKey;
    bob = deserializeInboundSenderKey(serializeInboundSenderKey(bob));
    expect(str(groupDecrypt(bob, messages[0]!, context).plaintext)).toBe('group 0');
    const distribution = senderKeyDistribution(alice);
    distribution[0] = 2;
    expect(code(() => processSenderKeyDistribution(distribution))).toBe('UNKNOWN_VERSION');
    expect(code(() => processSenderKeyDistribution(distribution.slice(0, 20)))).toMatch(
      /UNKNOWN_VERSION|MALFORMED/,
    );
  });
});
