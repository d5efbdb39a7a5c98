import { performance } from 'node:perf_hooks';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import {
  createInboundSession,
  createOutboundSession,
  decrypt,
  encrypt,
  equalBytes,
  generateDeviceKeys,
  generateOneTimePreKeys,
  generateSignedPreKey,
  preKeyBundle,
  primitives,
  randomBytes,
  type Session,
} from '@mvp/crypto';
import type { BenchConfig } from './config';
import { orderOf, type Log } from './messaging';
import { LatencyRecorder, median, roundResult, rounded, type RoundResult } from './stats';

/**
 * Scenario `crypto` (issue 6): what the Double Ratchet of @mvp/crypto costs on top of the cipher
 * it wraps. One encrypt + decrypt of the same random plaintext per message, three ways:
 *
 * - `raw`: XChaCha20-Poly1305 from the same `primitives` (@noble/ciphers): a fresh random 24-byte
 *   nonce, `seal` with a fixed key and no associated data, `open`.
 * - `stream`: Alice → Bob only, after the X3DH handshake: every message is one symmetric chain
 *   step on each side (KDF_CK, the message key's HKDF, header, AEAD with X3DH AD || header).
 * - `pingPong`: Alice and Bob take turns, so every message makes its receiver do a DH ratchet
 *   step (two X25519 agreements, one key pair generated, two root-KDF runs) before decrypting.
 *
 * Pure CPU, so it runs in the bench process (no target process is alive meanwhile, and there is
 * no client/server pair to share the cores): warm-up, then rounds in which the three alternate
 * and the order flips every round; figures are medians of rounds.
 */

type Variant = 'raw' | 'stream' | 'pingPong';
const VARIANTS: Variant[] = ['raw', 'stream', 'pingPong'];
/** The loop yields to the event loop this often (ms), so stderr and timers are not starved. */
const SLICE_MS = 50;

/** One encrypt + decrypt; answers the decrypted plaintext. */
type Step = () => Uint8Array;

/**
 * Alice and Bob after X3DH and one reply each way, so neither sends prekey messages any more:
 * the steady state of a conversation.
 */
function establishedSessions(): { alice: Session; bob: Session } {
  const aliceKeys = generateDeviceKeys();
  const bobKeys = generateDeviceKeys();
  const signedPreKey = generateSignedPreKey(bobKeys, 1);
  const [oneTimePreKey] = generateOneTimePreKeys(1, 1);
  const hello = randomBytes(16);
  const first = encrypt(
    createOutboundSession(aliceKeys, preKeyBundle(bobKeys, signedPreKey, oneTimePreKey)),
    hello,
  );
  const inbound = createInboundSession(
    bobKeys,
    { signedPreKey: signedPreKey.keyPair, oneTimePreKey: oneTimePreKey!.keyPair },
    first.message,
  );
  const reply = encrypt(inbound.session, hello);
  const alice = decrypt(first.session, reply.message).session;
  if (alice.pendingPreKey !== null) throw new Error('crypto setup: Alice still sends prekeys');
  return { alice, bob: reply.session };
}

function rawStep(plaintext: Uint8Array): Step {
  const key = randomBytes(primitives.KEY_LENGTH);
  const noAd = new Uint8Array(0);
  return () => {
    const nonce = randomBytes(primitives.NONCE_LENGTH);
    const sealed = primitives.seal(key, nonce, plaintext, noAd);
    return primitives.open(key, nonce, sealed, noAd);
  };
}

function streamStep(plaintext: Uint8Array): Step {
  let { alice, bob } = establishedSessions();
  return () => {
    const sent = encrypt(alice, plaintext);
    alice = sent.session;
    const received = decrypt(bob, sent.message);
    bob = received.session;
    return received.plaintext;
  };
}

function pingPongStep(plaintext: Uint8Array): Step {
  const sessions = establishedSessions();
  // [sender, receiver]: swapped after every message.
  let pair: [Session, Session] = [sessions.alice, sessions.bob];
  return () => {
    const sent = encrypt(pair[0], plaintext);
    const received = decrypt(pair[1], sent.message);
    pair = [received.session, sent.session];
    return received.plaintext;
  };
}

/** The size on the wire of one message of each kind, for the report. */
function messageBytes(plaintext: Uint8Array) {
  const { alice } = establishedSessions();
  return {
    raw: primitives.NONCE_LENGTH + plaintext.length + primitives.TAG_LENGTH,
    ratchet: encrypt(alice, plaintext).message.length,
  };
}

/**
 * Runs `step` for `durationS` seconds of CPU time in slices, yielding between them. Throughput
 * is messages per second of time spent in the loop (the yields are not counted); every message's
 * encrypt + decrypt time is a latency sample. The first message of the round is checked.
 */
async function measure(step: Step, plaintext: Uint8Array, durationS: number): Promise<RoundResult> {
  if (!equalBytes(step(), plaintext)) throw new Error('crypto: decrypted text differs');
  const latencies = new LatencyRecorder();
  let count = 0;
  let busyMs = 0;
  while (busyMs < durationS * 1000) {
    const sliceStart = performance.now();
    const sliceEnd = sliceStart + Math.min(SLICE_MS, durationS * 1000 - busyMs);
    let now = sliceStart;
    while (now < sliceEnd) {
      const before = now;
      step();
      now = performance.now();
      latencies.record(now - before);
      count++;
    }
    busyMs += now - sliceStart;
    await yieldToLoop();
  }
  return roundResult(count, busyMs / 1000, latencies);
}

const us = (ms: number) => rounded(ms * 1000, 2);

function variantSummary(rounds: RoundResult[]) {
  return {
    messagesPerS: rounded(median(rounds.map((r) => r.rps)), 0),
    /** 1 / throughput: the CPU cost of one encrypt + decrypt. */
    usPerMessage: us(1000 / median(rounds.map((r) => r.rps))),
    p50Us: us(median(rounds.map((r) => r.p50Ms))),
    p99Us: us(median(rounds.map((r) => r.p99Ms))),
    rounds: rounds.map((r) => ({
      messagesPerS: rounded(r.rps, 0),
      p50Us: us(r.p50Ms),
      p99Us: us(r.p99Ms),
      count: r.requests,
    })),
  };
}

export async function runCrypto(config: BenchConfig, log: Log) {
  const plaintext = randomBytes(config.crypto.plaintextBytes);
  const steps: Record<Variant, Step> = {
    raw: rawStep(plaintext),
    stream: streamStep(plaintext),
    pingPong: pingPongStep(plaintext),
  };
  if (config.warmupS > 0) {
    for (const variant of VARIANTS) {
      log(`warm-up crypto ${variant} ${config.warmupS}s`);
      await measure(steps[variant], plaintext, config.warmupS);
    }
  }
  const results: Record<Variant, RoundResult[]> = { raw: [], stream: [], pingPong: [] };
  for (let round = 0; round < config.rounds; round++) {
    for (const variant of orderOf(VARIANTS, round)) {
      const r = await measure(steps[variant], plaintext, config.durationS);
      results[variant].push(r);
      log(
        `round ${round + 1}/${config.rounds} crypto ${variant}: ${r.rps.toFixed(0)} msgs/s, ` +
          `p50 ${(r.p50Ms * 1000).toFixed(2)} µs, p99 ${(r.p99Ms * 1000).toFixed(2)} µs`,
      );
    }
  }

  const rate = (v: Variant) => median(results[v].map((r) => r.rps));
  const perRound = (v: Variant) =>
    results[v].map((r, i) => rounded(r.rps / (results.raw[i]?.rps ?? NaN), 3));
  return {
    what:
      `messages/s of one encrypt + decrypt of the same ${plaintext.length} random bytes, ` +
      'Alice to Bob, in the bench process (pure CPU, no target process alive)',
    variants: {
      raw:
        'XChaCha20-Poly1305 from @mvp/crypto `primitives` (@noble/ciphers): random 24-byte ' +
        'nonce, seal with a fixed key and no associated data, open',
      stream:
        'Double Ratchet after X3DH, same direction every message: one symmetric chain step ' +
        'each side (HMAC chain KDF, HKDF message key, header, AEAD over X3DH AD || header)',
      pingPong:
        'Double Ratchet, the direction alternates every message: the receiver does a DH ' +
        'ratchet step (2 X25519 agreements, 1 key pair generated, 2 root HKDFs) per message',
    },
    plaintextBytes: plaintext.length,
    rounds: config.rounds,
    roundS: config.durationS,
    warmupS: config.warmupS,
    aggregate: 'median of rounds; throughput over the time spent in the loop',
    messageBytes: messageBytes(plaintext),
    raw: variantSummary(results.raw),
    stream: variantSummary(results.stream),
    pingPong: variantSummary(results.pingPong),
    // ratchet/raw messages/s: below 1 is what the protocol costs over the bare cipher.
    ratio: {
      stream: rounded(rate('stream') / rate('raw'), 3),
      pingPong: rounded(rate('pingPong') / rate('raw'), 3),
      streamPerRound: perRound('stream'),
      pingPongPerRound: perRound('pingPong'),
    },
    overheadUsPerMessage: {
      stream: us(1000 / rate('stream') - 1000 / rate('raw')),
      pingPong: us(1000 / rate('pingPong') - 1000 / rate('raw')),
    },
  };
}
