import { describe, expect, it } from 'vitest';
import {
  type Session,
  createInboundSession,
  createOutboundSession,
  decrypt,
  deserializeSession,
  encrypt,
  isCryptoError,
  parsePreKeyMessage,
  serializeSession,
} from '../src/index.js';
import { bundleOf, device, flip, str, text } from './helpers.js';

/** Alice opens a session with Bob; Bob answers, so both sides are past the prekey stage. */
function pair(withOneTime = true) {
  const alice = device();
  const bob = device();
  let a = createOutboundSession(alice.keys, bundleOf(bob, withOneTime));
  const first = encrypt(a, text('hello bob'));
  a = first.session;
  const inbound = createInboundSession(
    bob.keys,
    {
      signedPreKey: bob.signedPreKey.keyPair,
      oneTimePreKey: withOneTime ? bob.oneTimePreKeys[0]!.keyPair : undefined,
    },
    first.message,
  );
  expect(str(inbound.plaintext)).toBe('hello bob');
  let b = inbound.session;
  const reply = encrypt(b, text('hi alice'));
  b = reply.session;
  const received = decrypt(a, reply.message);
  expect(str(received.plaintext)).toBe('hi alice');
  a = received.session;
  return { alice, bob, a, b };
}

function send(from: Session, message: string) {
  return encrypt(from, text(message));
}

function code(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    if (isCryptoError(error)) return error.code;
    throw error;
  }
  return undefined;
}

describe('X3DH', () => {
  it('agrees with a one-time prekey and without one (last resort)', () => {
    for (const withOneTime of [true, false]) {
      const { a, b } = pair(withOneTime);
      const m = send(a, 'after the handshake');
      expect(str(decrypt(b, m.message).plaintext)).toBe('after the handshake');
    }
  });

  it('the first messages carry the X3DH fields until the initiator hears back', () => {
    const alice = device();
    const bob = device();
    let a = createOutboundSession(alice.keys, bundleOf(bob));
    const m1 = send(a, 'one');
    a = m1.session;
    const m2 = send(a, 'two');
    expect(m1.message[1]).toBe(2);
    expect(m2.message[1]).toBe(2);
    const parsed = parsePreKeyMessage(m2.message);
    expect(parsed.oneTimePreKeyId).toBe(100);
    expect(parsed.signedPreKeyId).toBe(1);
    // Bob builds the session from whichever arrives first, then reads the other with it.
    const inbound = createInboundSession(
      bob.keys,
      { signedPreKey: bob.signedPreKey.keyPair, oneTimePreKey: bob.oneTimePreKeys[0]!.keyPair },
      m2.message,
    );
    expect(str(inbound.plaintext)).toBe('two');
    expect(str(decrypt(inbound.session, m1.message).plaintext)).toBe('one');
    const reply = send(inbound.session, 'ok');
    const back = decrypt(m2.session, reply.message);
    expect(back.session.pendingPreKey).toBeNull();
    expect(send(back.session, 'now plain').message[1]).toBe(1);
  });

  it('refuses a bundle whose signed prekey signature is forged or for another key', () => {
    const alice = device();
    const bob = device();
    const bundle = bundleOf(bob);
    const forged = {
      ...bundle,
      signedPreKey: { ...bundle.signedPreKey, signature: flip(bundle.signedPreKey.signature, 3) },
    };
    expect(code(() => createOutboundSession(alice.keys, forged))).toBe('BAD_SIGNATURE');
    const mallory = device();
    const swapped = { ...bundle, signingKey: mallory.keys.signing.publicKey };
    expect(code(() => createOutboundSession(alice.keys, swapped))).toBe('BAD_SIGNATURE');
  });

  it('a tampered identity key or base key in the prekey message fails authentication', () => {
    const alice = device();
    const bob = device();
    const { message } = send(createOutboundSession(alice.keys, bundleOf(bob)), 'hi');
    const preKeys = {
      signedPreKey: bob.signedPreKey.keyPair,
      oneTimePreKey: bob.oneTimePreKeys[0]!.keyPair,
    };
    // Offsets: version, type, IK_A (2..33), SIG_A (34..65), EK_A (66..97).
    for (const offset of [2, 40, 70]) {
      expect(code(() => createInboundSession(bob.keys, preKeys, flip(message, offset)))).toMatch(
        /DECRYPT_FAILED|INVALID_KEY/,
      );
    }
    // Another device's identity, well formed, is equally refused: the AD binds both identities.
    const mallory = device();
    const swapped = message.slice();
    swapped.set(mallory.keys.identity.publicKey, 2);
    expect(code(() => createInboundSession(bob.keys, preKeys, swapped))).toBe('DECRYPT_FAILED');
  });
});

describe('Double Ratchet', () => {
  it('a long conversation in both directions', () => {
    let { a, b } = pair();
    for (let round = 0; round < 20; round++) {
      const burst = 1 + (round % 3);
      for (let i = 0; i < burst; i++) {
        const m = send(a, `a${round}.${i}`);
        a = m.session;
        const r = decrypt(b, m.message);
        b = r.session;
        expect(str(r.plaintext)).toBe(`a${round}.${i}`);
      }
      const m = send(b, `b${round}`);
      b = m.session;
      const r = decrypt(a, m.message);
      a = r.session;
      expect(str(r.plaintext)).toBe(`b${round}`);
    }
  });

  it('out-of-order and dropped messages, across DH ratchet steps', () => {
    let { a, b } = pair();
    const sent: Uint8Array[] = [];
    for (let i = 0; i < 5; i++) {
      const m = send(a, `first ${i}`);
      a = m.session;
      sent.push(m.message);
    }
    // 4 first, then 1; 0, 2, 3 are still in flight while Bob replies and Alice ratchets.
    let r = decrypt(b, sent[4]!);
    b = r.session;
    expect(str(r.plaintext)).toBe('first 4');
    r = decrypt(b, sent[1]!);
    b = r.session;
    const reply = send(b, 'reply');
    b = reply.session;
    a = decrypt(a, reply.message).session;
    const next = send(a, 'second chain');
    a = next.session;
    r = decrypt(b, next.message);
    b = r.session;
    expect(str(r.plaintext)).toBe('second chain');
    // The late ones from the first chain still open; message 3 is never delivered (dropped).
    for (const i of [2, 0]) {
      r = decrypt(b, sent[i]!);
      b = r.session;
      expect(str(r.plaintext)).toBe(`first ${i}`);
    }
    expect(b.ratchet.skipped).toHaveLength(1);
  });

  it('rejects a replay: every message key is used once', () => {
    let { a, b } = pair();
    const m1 = send(a, 'once');
    a = m1.session;
    const m2 = send(a, 'twice');
    b = decrypt(b, m2.message).session; // m1 is now a skipped key
    b = decrypt(b, m1.message).session;
    expect(code(() => decrypt(b, m1.message))).toBe('DUPLICATE_MESSAGE');
    expect(code(() => decrypt(b, m2.message))).toBe('DUPLICATE_MESSAGE');
  });

  it('rejects tampered ciphertext, nonce, header and ratchet public key, keeping the state', () => {
    const { a, b } = pair();
    const m = send(a, 'integrity');
    const before = serializeSession(b);
    // Header: version 0, type 1, ratchet key 2..33, PN 34..37, N 38..41; nonce 42..65.
    const cases = {
      ciphertext: flip(m.message, 70),
      tag: flip(m.message, -1),
      nonce: flip(m.message, 50),
      previousCount: flip(m.message, 37),
      counter: flip(m.message, 41),
      ratchetKey: flip(m.message, 10),
    };
    for (const [what, tampered] of Object.entries(cases)) {
      const result = code(() => decrypt(b, tampered));
      expect([what, result]).toEqual([what, expect.stringMatching(/DECRYPT_FAILED|INVALID_KEY/)]);
    }
    expect(code(() => decrypt(b, flip(m.message, 0)))).toBe('UNKNOWN_VERSION');
    expect(serializeSession(b)).toBe(before);
    expect(str(decrypt(b, m.message).plaintext)).toBe('integrity');
  });

  it('a message for another session (other AD) does not open', () => {
    const one = pair();
    const two = pair();
    const m = send(one.a, 'for one');
    expect(code(() => decrypt(two.b, m.message))).toMatch(/DECRYPT_FAILED|INVALID_KEY/);
  });

  it('enforces the skipped-key bounds: per chain refused, per session capped', () => {
    let { a, b } = pair();
    const limits = { maxSkip: 10, maxSkippedKeys: 15 };
    const chain: Uint8Array[] = [];
    for (let i = 0; i < 12; i++) {
      const m = send(a, `m${i}`);
      a = m.session;
      chain.push(m.message);
    }
    // Message 11 would need 11 skipped keys: refused, state untouched.
    expect(code(() => decrypt(b, chain[11]!, limits))).toBe('TOO_MANY_SKIPPED');
    b = decrypt(b, chain[10]!, limits).session; // skips 0..9 (10 keys)
    expect(b.ratchet.skipped).toHaveLength(10);
    // A reply and a new chain from Alice: 8 more skipped keys overflow the cap of 15.
    const reply = send(b, 'r');
    b = reply.session;
    a = decrypt(a, reply.message).session;
    const chain2: Uint8Array[] = [];
    for (let i = 0; i < 9; i++) {
      const m = send(a, `n${i}`);
      a = m.session;
      chain2.push(m.message);
    }
    b = decrypt(b, chain2[8]!, limits).session;
    expect(b.ratchet.skipped.length).toBe(15);
    // The oldest skipped keys were forgotten: those messages are now unreadable.
    expect(code(() => decrypt(b, chain[0]!, limits))).toMatch(/DECRYPT_FAILED|DUPLICATE_MESSAGE/);
    expect(str(decrypt(b, chain[9]!, limits).plaintext)).toBe('m9');
    expect(str(decrypt(b, chain2[0]!, limits).plaintext)).toBe('n0');
  });

  it('forward secrecy: a stolen current state does not decrypt earlier messages', () => {
    let { a, b } = pair();
    const earlier: Uint8Array[] = [];
    for (let i = 0; i < 3; i++) {
      const m = send(a, `secret ${i}`);
      a = m.session;
      earlier.push(m.message);
      b = decrypt(b, m.message).session;
      const reply = send(b, 'ack');
      b = reply.session;
      a = decrypt(a, reply.message).session;
    }
    // The thief copies both sides' full state now.
    const stolenB = deserializeSession(serializeSession(b));
    const stolenA = deserializeSession(serializeSession(a));
    for (const message of earlier) {
      expect(code(() => decrypt(stolenB, message))).toMatch(
        /DECRYPT_FAILED|DUPLICATE_MESSAGE|INVALID_KEY/,
      );
      expect(code(() => decrypt(stolenA, message))).toMatch(
        /DECRYPT_FAILED|DUPLICATE_MESSAGE|INVALID_KEY/,
      );
    }
    // Nothing in the stolen state is a message key of an earlier message.
    expect(stolenB.ratchet.skipped).toHaveLength(0);
  });

  it('recovery after compromise: new DH ratchet steps lock the thief out', () => {
    let { a, b } = pair();
    let thief = deserializeSession(serializeSession(a)); // Alice's state leaks
    // Before Alice's next DH step the thief can read what Bob sends (that is the compromise).
    const m1 = send(b, 'still readable by the thief');
    b = m1.session;
    expect(str(decrypt(thief, m1.message).plaintext)).toBe('still readable by the thief');
    thief = decrypt(thief, m1.message).session;
    a = decrypt(a, m1.message).session;
    // Alice's current ratchet key leaked too, so Bob's next chain (built on it) is still open
    // to the thief; Alice only picks a key the thief never saw once that chain reaches her.
    const m2 = send(a, 'on the leaked ratchet key');
    a = m2.session;
    b = decrypt(b, m2.message).session;
    const m3 = send(b, 'new chain, leaked key on our side');
    b = m3.session;
    expect(str(decrypt(thief, m3.message).plaintext)).toBe('new chain, leaked key on our side');
    a = decrypt(a, m3.message).session;
    // Next DH step: Alice's fresh key reaches Bob, and every later chain shuts the thief out.
    const m4 = send(a, 'fresh ratchet key');
    a = m4.session;
    b = decrypt(b, m4.message).session;
    const m5 = send(b, 'after recovery');
    b = m5.session;
    expect(str(decrypt(a, m5.message).plaintext)).toBe('after recovery');
    expect(code(() => decrypt(thief, m5.message))).toBe('DECRYPT_FAILED');
    const m6 = send(a, 'and Alice to Bob');
    expect(str(decrypt(b, m6.message).plaintext)).toBe('and Alice to Bob');
    expect(code(() => decrypt(thief, m6.message))).toBe('DECRYPT_FAILED');
  });

  it('session state survives serialization mid-conversation', () => {
    let { a, b } = pair();
    const m = send(a, 'persisted');
    a = m.session;
    b = deserializeSession(serializeSession(b));
    expect(str(decrypt(b, m.message).plaintext)).toBe('persisted');
  });
});
