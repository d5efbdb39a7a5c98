import { afterEach, describe, expect, it, vi } from 'vitest';
import { base64ToBytes, bytesToBase64 } from '../base64';
import type { CallCrypto } from './callCrypto';
import { isCallError } from './callError';
import { errorCodeOf } from '../errors';
import { newCallId, timeOfCallId } from './callId';
import { createCallManager, type MvpCalls } from './callManager';
import type { Call, CallState, CallTiming } from './callSession';
import type { SyncEvent } from '../messaging';
import { createFakeCallServer, serverError } from './fakeCallServer.testing';
import { FakePeerConnection, type FakeTrack, fakeGetUserMedia } from './fakeWebRtc.testing';
import type { CallTransport } from './transport';

/**
 * Stands in for pairwise sessions: wraps the bytes with their addressing, and on the way in
 * checks that they came from the device named and were meant for this one.
 */
function addressedCrypto(me: string): CallCrypto {
  return {
    encrypt: async (_user, deviceId, plaintext) =>
      new TextEncoder().encode(
        JSON.stringify({
          from: me,
          to: deviceId,
          sealed: bytesToBase64(plaintext).split('').reverse().join(''),
        }),
      ),
    decrypt: async (_user, deviceId, ciphertext) => {
      const box = JSON.parse(new TextDecoder().decode(ciphertext)) as Record<string, string>;
      if (box.from !== deviceId || box.to !== me)
        throw new Error(`misaddressed ${box.from}→${box.to}`);
      return base64ToBytes(box.sealed!.split('').reverse().join(''));
    },
  };
}

const timing = {
  heartbeatMs: 15,
  candidateBatchMs: 5,
  disconnectedGraceMs: 20,
  connectTimeoutMs: 2_000,
};

/** Under fake timers `ms` is fake time, which moves only here: the same on any machine. */
async function waitFor(check: () => boolean, what: string, ms = 5_000) {
  const until = Date.now() + ms;
  while (!check()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    if (vi.isFakeTimers()) await vi.advanceTimersByTimeAsync(5);
    else await new Promise((r) => setTimeout(r, 5));
  }
}

/** The device's first ICE-restart offer never reaches the server; `count` sees every one. */
const losingFirstRestart =
  (count: () => number) =>
  (own: CallTransport): CallTransport => ({
    ...own,
    signal: async (input) => {
      if (input.kind === 'ice-restart' && count() === 0) throw new TypeError('fetch failed');
      return own.signal(input);
    },
  });

/**
 * The server places the call, and the reply to the start is lost; so is every hangup while
 * `offline()`. `tries` gets the time of each hangup.
 */
const lostStart =
  (tries: number[], offline: () => boolean) =>
  (own: CallTransport): CallTransport => ({
    ...own,
    start: async (input) => {
      await own.start(input);
      throw new TypeError('fetch failed');
    },
    hangup: async (callId, reason) => {
      tries.push(Date.now());
      if (offline()) throw new TypeError('fetch failed');
      return own.hangup(callId, reason);
    },
  });

/** Once the server has taken what was retried, nothing more goes out, however long (fake time). */
async function noMoreTries(tries: unknown[]) {
  const done = tries.length;
  await vi.advanceTimersByTimeAsync(5 * 60_000);
  expect(tries).toHaveLength(done);
}

/** Counts the device's ICE-restart signals (offers, or answers) as they are sent. */
const countingRestarts =
  (counted: () => void) =>
  (own: CallTransport): CallTransport => ({
    ...own,
    signal: async (input) => {
      if (input.kind === 'ice-restart') counted();
      return own.signal(input);
    },
  });

/** `from` calls bob's one device, which answers: both connected. */
/** The promise's outcome, fake time moving on (in `waitFor`) while it is pending. */
async function settled<T>(promise: Promise<T>, what: string): Promise<T> {
  let done = false;
  promise.then(
    () => (done = true),
    () => (done = true),
  );
  await waitFor(() => done, what);
  return promise;
}

async function connectedCall(from: MvpCalls, bob: { ringing(): Call | undefined }) {
  const call = await settled(from.start('bob'), 'placed');
  await waitFor(() => !!bob.ringing(), 'ringing');
  const theirs = bob.ringing()!;
  await settled(theirs.accept(), 'answered');
  await waitFor(() => call.state === 'connected' && theirs.state === 'connected', 'connected');
  return { call, theirs };
}

let cleanup: (() => Promise<void>) | undefined;

function setup(
  options: { durableDelayMs?: number; ringCheckMs?: number; iceTtlSeconds?: number } = {},
) {
  const server = createFakeCallServer(options);
  const sessionTiming = options.ringCheckMs
    ? { ...timing, ringCheckMs: options.ringCheckMs }
    : timing;
  const managers: MvpCalls[] = [];
  const errors: unknown[] = [];
  const device = (
    userId: string,
    deviceId: string,
    options: {
      published?: boolean;
      crypto?: (own: CallCrypto) => CallCrypto;
      /** The server as this device sees it: the fake's, or what a test makes of it. */
      transport?: (own: CallTransport) => CallTransport;
      timing?: Partial<CallTiming>;
      leaveOnPageHide?: boolean;
    } = {},
  ) => {
    const { transport, sync } = server.device(userId, deviceId, options);
    const own = addressedCrypto(deviceId);
    const calls = createCallManager({
      transport: options.transport?.(transport) ?? transport,
      sync,
      crypto: options.crypto?.(own) ?? own,
      RTCPeerConnection: FakePeerConnection,
      getUserMedia: fakeGetUserMedia,
      timing: { ...sessionTiming, ...options.timing },
      ...(options.leaveOnPageHide === undefined
        ? {}
        : { leaveOnPageHide: options.leaveOnPageHide }),
    });
    calls.onError((e) => errors.push(e));
    const incoming: Call[] = [];
    const states: CallState[] = [];
    calls.onIncoming((call) => incoming.push(call));
    calls.onChange((call) => {
      if (states.at(-1) !== call.state) states.push(call.state);
    });
    managers.push(calls);
    return { calls, incoming, states, ringing: () => incoming.at(-1) };
  };
  // Every manager made here is closed after the test.
  cleanup = async () => void (await Promise.all(managers.map((m) => m.close())));
  return { server, device, managers, errors };
}

afterEach(async () => {
  vi.useRealTimers();
  await cleanup?.();
  cleanup = undefined;
  FakePeerConnection.instances = [];
});

function world(options: { durableDelayMs?: number } = {}) {
  const w = setup(options);
  const alice = w.device('alice', 'alice-phone');
  const bobPhone = w.device('bob', 'bob-phone');
  const bobLaptop = w.device('bob', 'bob-laptop');
  return { ...w, alice, bobPhone, bobLaptop };
}

const pcOf = (call: Call) => call.peerConnection as unknown as FakePeerConnection;

describe('CallManager', () => {
  it('rings every device, the first to answer connects, the other is told answered elsewhere', async () => {
    const { alice, bobPhone, bobLaptop, server, errors } = world();
    const call = await alice.calls.start('bob', { media: 'video' });
    expect(call.state).toBe('dialing');
    expect(call.direction).toBe('outgoing');
    await waitFor(() => !!bobPhone.ringing() && !!bobLaptop.ringing(), 'both devices ringing');
    const ringing = bobPhone.ringing()!;
    expect(ringing).toMatchObject({
      state: 'ringing',
      peerUserId: 'alice',
      media: 'video',
      id: call.id,
    });
    expect(bobPhone.calls.state).toBe('ringing');

    await ringing.accept();
    await waitFor(() => call.state === 'connected' && ringing.state === 'connected', 'connected');
    await waitFor(() => bobLaptop.ringing()!.state === 'ended', 'laptop stops ringing');
    expect(bobLaptop.ringing()!.endReason).toBe('answered_elsewhere');
    expect(alice.states).toEqual(['dialing', 'connecting', 'connected']);
    expect(bobPhone.states).toEqual(['ringing', 'connecting', 'connected']);
    expect(call.peerDeviceId).toBe('bob-phone');
    expect(call.remoteStream?.getVideoTracks()).toHaveLength(1);
    expect(ringing.remoteStream?.getAudioTracks()).toHaveLength(1);

    // The server relayed only sealed bytes, candidates in batches, between the two devices.
    const kinds = server.signals.map((s) => s.kind);
    expect(kinds.every((k) => k === 'candidates')).toBe(true);
    expect(server.signals.length).toBeLessThan(4);
    for (const { ciphertext } of server.signals)
      expect(atob(ciphertext)).not.toContain('candidate:');
    for (const { event } of server.log)
      if (event.type === 'call.invite' && event.offer)
        expect(atob(event.offer)).not.toContain('ice=');

    await waitFor(() => server.heartbeats >= 2, 'heartbeats');
    await call.hangup();
    await waitFor(() => ringing.state === 'ended', 'hung up on both');
    expect([call.endReason, ringing.endReason]).toEqual(['hangup', 'hangup']);
    expect(call.peerConnection).toBeNull();
    expect(FakePeerConnection.instances.every((pc) => pc.closed)).toBe(true);
    expect(errors).toEqual([]);
  });

  it('declined: ended(declined) on the caller and every callee device', async () => {
    const { alice, bobPhone, bobLaptop } = world();
    const call = await alice.calls.start('bob');
    await waitFor(() => !!bobLaptop.ringing() && !!bobPhone.ringing(), 'ringing');
    await bobLaptop.ringing()!.decline();
    await waitFor(() => call.state === 'ended' && bobPhone.ringing()!.state === 'ended', 'ended');
    expect([call.endReason, bobPhone.ringing()!.endReason, bobLaptop.ringing()!.endReason]).toEqual(
      ['declined', 'declined', 'declined'],
    );
    expect(call.localStream!.getTracks().every((t) => (t as FakeTrack).stopped)).toBe(true);
  });

  it('missed when nobody answers (ring timeout), and when the caller gives up', async () => {
    const { alice, bobPhone, server } = world();
    const first = await alice.calls.start('bob');
    await waitFor(() => !!bobPhone.ringing(), 'ringing');
    server.expire(first.id);
    await waitFor(() => first.state === 'ended' && bobPhone.ringing()!.state === 'ended', 'ended');
    expect([first.endReason, bobPhone.ringing()!.endReason]).toEqual(['missed', 'missed']);

    const second = await alice.calls.start('bob');
    await waitFor(() => bobPhone.ringing()!.id === second.id, 'ringing again');
    await second.hangup();
    await waitFor(() => bobPhone.ringing()!.state === 'ended', 'callee told');
    expect([second.endReason, bobPhone.ringing()!.endReason]).toEqual(['hangup', 'missed']);
  });

  it('names each call itself and seals the id into every offer; a start already answered ends', async () => {
    const { alice, bobPhone, server } = world();
    const before = Date.now();
    const call = await alice.calls.start('bob');
    expect(timeOfCallId(call.id)).toBeGreaterThanOrEqual(before);
    expect(timeOfCallId(call.id)).toBeLessThanOrEqual(Date.now());
    await waitFor(() => bobPhone.ringing()?.id === call.id, 'ringing');
    await call.hangup();

    // Hung up while the start is still on its way: the call that then rings over there ends.
    const release = server.holdStarts();
    const placing = alice.calls.start('bob');
    await waitFor(() => server.heldStarts === 1, 'the start sent, its answer held');
    await alice.calls.current!.hangup();
    release();
    const late = await placing;
    await waitFor(() => bobPhone.ringing()?.id === late.id, 'rang late');
    await waitFor(() => server.calls.get(late.id)!.state === 'missed', 'ended on the server');
    await waitFor(() => bobPhone.ringing()!.state === 'ended', 'stopped ringing');
  });

  it('a start whose reply is lost is cancelled: it does not ring for nobody, and a retry is not busy', async () => {
    const w = setup();
    let lose = true;
    const { calls: alice } = w.device('alice', 'alice-phone', {
      transport: (own) => ({
        ...own,
        // The server places the call; the reply to the start is lost.
        start: async (input) => {
          const placed = await own.start(input);
          if (!lose) return placed;
          lose = false;
          throw new TypeError('fetch failed');
        },
      }),
    });
    const bob = w.device('bob', 'bob-phone');
    const error = await alice.start('bob').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TypeError);
    expect(alice.current).toBeNull();
    const [ghost] = [...w.server.calls.values()];
    expect(ghost).toMatchObject({ state: 'missed', endReason: 'user_hangup' });

    const retry = await alice.start('bob');
    expect(retry.state).toBe('dialing');
    await waitFor(() => bob.ringing()?.id === retry.id, 'the retry rings');
    expect(bob.incoming.filter((c) => c.state !== 'ended').map((c) => c.id)).toEqual([retry.id]);
    await retry.hangup();
  });

  it('a lost start whose cancel fails too (the network is down) is cancelled again in the background until the server takes it', async () => {
    vi.useFakeTimers();
    const w = setup();
    const tries: number[] = [];
    let offline = true;
    const { calls: alice } = w.device('alice', 'alice-phone', {
      transport: lostStart(tries, () => offline),
    });
    const bob = w.device('bob', 'bob-phone');
    let failed: unknown;
    void alice.start('bob').catch((e: unknown) => (failed = e));
    await waitFor(() => failed !== undefined, 'the start fails');
    expect(failed).toBeInstanceOf(TypeError);
    expect(tries).toHaveLength(1); // told after one try: the others do not hold it up
    const [ghost] = [...w.server.calls.values()];
    await waitFor(() => tries.length === 3, 'tried again');
    expect(ghost!.state).toBe('ringing');
    await waitFor(() => bob.ringing()?.state === 'ringing', 'it rings over there');

    offline = false;
    await waitFor(() => ghost!.state !== 'ringing', 'cancelled', 60_000);
    expect(ghost).toMatchObject({ state: 'missed', endReason: 'user_hangup' });
    await waitFor(() => bob.ringing()!.state === 'ended', 'it stops ringing');
    await noMoreTries(tries); // taken
  });

  it('the background cancel of a lost start stops once the ring is surely over, or when the manager closes', async () => {
    vi.useFakeTimers();
    const w = setup();
    const tries: number[] = [];
    let sentAt = 0;
    const { calls: alice } = w.device('alice', 'alice-phone', {
      transport: (own) => {
        const lost = lostStart(tries, () => true)(own);
        return { ...lost, start: (input) => ((sentAt = Date.now()), lost.start(input)) };
      },
    });
    w.device('bob', 'bob-phone');
    void alice.start('bob').catch(() => undefined);
    await vi.advanceTimersByTimeAsync(10 * 60_000);
    expect(tries.length).toBeGreaterThan(3);
    // Past the server's ring timeout (60 s), which has ended the call by then, and no longer.
    expect(tries.at(-1)! - sentAt).toBeGreaterThan(60_000);
    expect(tries.at(-1)! - sentAt).toBeLessThanOrEqual(90_000);

    const carolTries: number[] = [];
    const { calls: carol } = w.device('carol', 'carol-phone', {
      transport: lostStart(carolTries, () => true),
    });
    w.device('dave', 'dave-phone');
    void carol.start('dave').catch(() => undefined);
    await waitFor(() => carolTries.length === 3, 'tried again');
    await carol.close();
    await vi.advanceTimersByTimeAsync(10 * 60_000);
    expect(carolTries).toHaveLength(3);
  });

  it('a hangup or decline the network loses is sent again in the background: the other side does not go on with nobody there', async () => {
    vi.useFakeTimers();
    const w = setup();
    let offline = false;
    const tries: string[] = [];
    const losing = (own: CallTransport): CallTransport => ({
      ...own,
      hangup: async (callId, reason) => {
        tries.push(`hangup ${callId}`);
        if (offline) throw new TypeError('fetch failed');
        return own.hangup(callId, reason);
      },
      reject: async (callId) => {
        tries.push(`reject ${callId}`);
        if (offline) throw new TypeError('fetch failed');
        return own.reject(callId);
      },
    });
    const { calls: alice } = w.device('alice', 'alice-phone', { transport: losing });
    const bob = w.device('bob', 'bob-phone', { transport: losing });

    // Connected, then alice hangs up with her network gone: over here at once, and no error.
    const { call, theirs } = await connectedCall(alice, bob);
    offline = true;
    await settled(call.hangup(), 'hung up here');
    expect([call.state, call.endReason]).toEqual(['ended', 'hangup']);
    await waitFor(() => tries.length === 3, 'tried again');
    expect(w.server.calls.get(call.id)!.state).toBe('accepted');
    expect(theirs.state).toBe('connected');
    offline = false;
    await waitFor(() => theirs.state === 'ended', 'bob hears the hangup', 60_000);
    expect(w.server.calls.get(call.id)).toMatchObject({ state: 'ended', endReason: 'user_hangup' });
    expect(theirs.endReason).toBe('hangup');

    // Bob declines a ringing call with his network gone: the caller hears it once it is back.
    tries.length = 0;
    const second = await settled(alice.start('bob'), 'placed');
    await waitFor(() => bob.ringing()?.id === second.id, 'ringing');
    offline = true;
    await settled(bob.ringing()!.decline(), 'declined here');
    await waitFor(() => tries.length === 3, 'tried again');
    expect(tries).toEqual(Array(3).fill(`reject ${second.id}`));
    expect(second.state).toBe('dialing');
    offline = false;
    await waitFor(() => second.state === 'ended', 'alice hears the decline', 60_000);
    expect(second.endReason).toBe('declined');
    await noMoreTries(tries); // taken
  });

  it('a hangup made while the start is on its way is sent again when the network loses it; a refusal for good is told', async () => {
    vi.useFakeTimers();
    const w = setup();
    let offline = true;
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const tries: number[] = [];
    let sending = false;
    const { calls: alice } = w.device('alice', 'alice-phone', {
      transport: (own) => ({
        ...own,
        start: async (input) => {
          sending = true;
          await held;
          return own.start(input);
        },
        hangup: async (callId, reason) => {
          tries.push(Date.now());
          if (offline) throw new TypeError('fetch failed');
          return own.hangup(callId, reason);
        },
      }),
    });
    const bob = w.device('bob', 'bob-phone');
    const placing = alice.start('bob');
    await waitFor(() => sending, 'the start on its way');
    const call = alice.current!;
    await settled(call.hangup(), 'hung up before the start is placed');
    release();
    await settled(placing, 'placed');
    await waitFor(() => tries.length === 2, 'tried again');
    const ghost = w.server.calls.get(call.id)!;
    expect(ghost.state).toBe('ringing');
    offline = false;
    await waitFor(() => ghost.state !== 'ringing', 'cancelled', 60_000);
    expect(ghost).toMatchObject({ state: 'missed', endReason: 'user_hangup' });
    await waitFor(() => bob.ringing()?.state !== 'ringing', 'it stops ringing');

    // A refusal that sending again cannot change reaches the app, and is not sent again.
    const refusing: string[] = [];
    const { calls: carol } = w.device('carol', 'carol-phone', {
      transport: (own) => ({
        ...own,
        hangup: async () => {
          refusing.push('hangup');
          throw serverError('FORBIDDEN');
        },
      }),
    });
    const dave = w.device('dave', 'dave-phone');
    const third = await settled(carol.start('dave'), 'placed');
    await waitFor(() => dave.ringing()?.id === third.id, 'ringing');
    const refused = await settled(
      third.hangup().then(
        () => null,
        (e: unknown) => e,
      ),
      'refused',
    );
    expect(errorCodeOf(refused)).toBe('FORBIDDEN');
    await vi.advanceTimersByTimeAsync(5 * 60_000);
    expect(refusing).toEqual(['hangup']);
  });

  it('an offer moved into another call, a stale or an undecryptable one never rings', async () => {
    const { alice, bobPhone, server, errors } = world();
    const call = await alice.calls.start('bob');
    await waitFor(() => bobPhone.ringing()?.id === call.id, 'ringing');
    await call.hangup();
    await waitFor(() => bobPhone.ringing()!.state === 'ended', 'ended');
    const sent = server.log.find(
      (e) => e.deviceId === 'bob-phone' && e.event.type === 'call.invite',
    )!.event as Extract<SyncEvent, { type: 'call.invite' }>;

    const invite = (callId: string, offer: string) =>
      server.deliver('bob-phone', {
        type: 'call.invite',
        call: { ...sent.call, id: callId, state: 'ringing' },
        callerDeviceId: 'alice-phone',
        offer,
      });
    const sealAs = async (callId: string) =>
      bytesToBase64(
        await addressedCrypto('alice-phone').encrypt(
          'bob',
          'bob-phone',
          new TextEncoder().encode(
            JSON.stringify({ description: { type: 'offer', sdp: 'v=0' }, callId }),
          ),
        ),
      );
    const stale = newCallId(Date.now() - 11 * 60_000);
    invite(newCallId(), sent.offer!); // the first call's offer, replayed into a new call
    invite(stale, await sealAs(stale)); // sealed for its call, but 11 minutes old
    invite(newCallId(), 'bm90IGFuIG9mZmVy'); // not sealed by the caller at all
    invite(call.id, sent.offer!); // the first call's own invite, again
    await waitFor(() => errors.length === 3, 'three refusals');
    expect(errors.map((e) => isCallError(e) && e.code)).toEqual([
      'INVALID_OFFER',
      'INVALID_OFFER',
      'INVALID_OFFER',
    ]);
    expect(bobPhone.incoming.map((c) => c.id)).toEqual([call.id]);
    errors.length = 0;

    const fresh = newCallId();
    invite(fresh, await sealAs(fresh)); // what a real offer looks like: it rings
    await waitFor(() => bobPhone.ringing()?.id === fresh, 'rings');
    expect(errors).toEqual([]);
  });

  it('a call that ends while its offer is being opened never rings; its events are not lost', async () => {
    const w = setup();
    const opens: (() => void)[] = [];
    let held = true;
    const slowOpen = (own: CallCrypto): CallCrypto => ({
      encrypt: (...args) => own.encrypt(...args),
      decrypt: async (...args) => {
        if (held) await new Promise<void>((resolve) => opens.push(resolve));
        return own.decrypt(...args);
      },
    });
    const alice = w.device('alice', 'alice-phone');
    const bob = w.device('bob', 'bob-phone', { crypto: slowOpen });
    const cancelled = await alice.calls.start('bob');
    await waitFor(() => opens.length === 1, 'the offer being opened');
    await cancelled.hangup();
    const endedHere = () =>
      w.server.delivered.some((e) => e.deviceId === 'bob-phone' && e.event.type === 'call.ended');
    await waitFor(endedHere, 'call.ended delivered while the offer is still being opened');
    opens.splice(0).forEach((open) => open());
    const answered = await alice.calls.start('bob');
    await waitFor(() => opens.length === 1, 'the second offer being opened');
    held = false;
    opens.splice(0).forEach((open) => open());
    await waitFor(() => bob.ringing()?.id === answered.id, 'the second call rings');
    expect(bob.incoming.map((c) => c.id)).toEqual([answered.id]);
    await bob.ringing()!.accept();
    await waitFor(() => answered.state === 'connected', 'connected');
    await answered.hangup();
  });

  it('a manager closed while an offer is being opened rings for nothing', async () => {
    const w = setup();
    const opens: (() => void)[] = [];
    let decrypted = 0;
    const alice = w.device('alice', 'alice-phone');
    const bob = w.device('bob', 'bob-phone', {
      crypto: (own) => ({
        encrypt: (...args) => own.encrypt(...args),
        decrypt: async (...args) => {
          await new Promise<void>((resolve) => opens.push(resolve));
          const plaintext = await own.decrypt(...args);
          decrypted++;
          return plaintext;
        },
      }),
    });
    const call = await alice.calls.start('bob');
    await waitFor(() => opens.length === 1, 'the offer being opened');
    await bob.calls.close();
    opens.splice(0).forEach((open) => open());
    await waitFor(() => decrypted === 1, 'the offer opened');
    await new Promise((r) => setTimeout(r, 0)); // the promise jobs after it, all of them
    expect(bob.incoming).toEqual([]);
    expect(w.errors).toEqual([]);
    await call.hangup();
  });

  it('busy when the callee is in a call', async () => {
    const w = world();
    const carol = w.device('carol', 'carol-phone');
    const first = await w.alice.calls.start('bob');
    await waitFor(() => !!w.bobPhone.ringing(), 'ringing');
    const second = await carol.calls.start('bob');
    expect(second).toMatchObject({ state: 'ended', endReason: 'busy' });
    expect(carol.calls.current).toBeNull();
    await first.hangup();
  });

  it('glare: both call at once, one call goes on and both connect in it', async () => {
    const { alice, bobPhone } = world();
    const [fromAlice, fromBob] = await Promise.all([
      alice.calls.start('bob'),
      bobPhone.calls.start('alice'),
    ]);
    // "alice" < "bob": alice's call wins on both sides, bob's ends with glare and bob answers.
    await waitFor(() => fromBob.state === 'ended', 'the losing call ends');
    expect(fromBob.endReason).toBe('glare');
    await waitFor(() => fromAlice.state === 'connected', 'the winning call connects');
    expect(bobPhone.calls.current?.id).toBe(fromAlice.id);
    await waitFor(() => bobPhone.calls.state === 'connected', 'connected on bob');
  });

  it('calling someone whose call rings here answers it: one call, connected on both sides', async () => {
    const { alice, bobPhone, server } = world();
    const fromAlice = await alice.calls.start('bob');
    await waitFor(() => bobPhone.ringing()?.id === fromAlice.id, 'ringing');
    const fromBob = await bobPhone.calls.start('alice', { media: 'video' });
    expect(fromBob.id).toBe(fromAlice.id);
    expect(fromBob.direction).toBe('incoming');
    await waitFor(() => fromAlice.state === 'connected', 'connected');
    expect(fromBob.videoEnabled).toBe(true); // taken with the camera asked for
    expect([...server.calls.values()]).toHaveLength(1);
    // With a call in progress, another start is still refused.
    await expect(bobPhone.calls.start('carol')).rejects.toMatchObject({ code: 'CALL_IN_PROGRESS' });
    await fromBob.hangup();
  });

  it('glare the other way round: the losing call was already ringing, and is ended by the event', async () => {
    const { alice, bobPhone } = world();
    // Bob's call is placed first; Alice's start reaches the server before its invite reaches her.
    const fromBob = await bobPhone.calls.start('alice');
    const fromAlice = await alice.calls.start('bob');
    await waitFor(() => fromBob.state === 'ended', 'the losing call ends');
    expect(fromBob.endReason).toBe('glare');
    await waitFor(() => fromAlice.state === 'connected', 'the winning call connects');
    await waitFor(() => bobPhone.calls.state === 'connected', 'connected on bob');
  });

  it('after a lost glare, only the winning call is answered by itself, not a later one', async () => {
    const w = setup();
    const alice = w.device('alice', 'alice-phone');
    // Bob cannot open the winning call's offer, so it never rings for him.
    let firstOffer = true;
    const bob = w.device('bob', 'bob-phone', {
      crypto: (own) => ({
        ...own,
        decrypt: (user, device, bytes) => {
          if (!firstOffer) return own.decrypt(user, device, bytes);
          firstOffer = false;
          return Promise.reject(new Error('no session'));
        },
      }),
    });
    const [fromAlice, fromBob] = await Promise.all([
      alice.calls.start('bob'),
      bob.calls.start('alice'),
    ]);
    await waitFor(() => fromBob.state === 'ended', 'the losing call ends');
    expect(fromBob.endReason).toBe('glare');
    await waitFor(() => w.errors.length > 0, 'the winning offer refused');
    await fromAlice.hangup();
    await waitFor(() => fromAlice.state === 'ended', 'cancelled');

    const later = await alice.calls.start('bob');
    await waitFor(() => bob.ringing()?.id === later.id, 'the later call rings');
    // An auto-answer happens as the call rings (accept moves it to connecting at once).
    expect(bob.ringing()!.state).toBe('ringing');
    expect(later.state).toBe('dialing');
    await later.hangup();
  });

  it('refuses clearly: a callee without devices, a second live call, no crypto', async () => {
    const w = setup();
    const alice = w.device('alice', 'alice-phone');
    w.device('dave', 'dave-phone', { published: false });
    const error = await alice.calls.start('dave').catch((e: unknown) => e);
    expect(isCallError(error) && error.code).toBe('NO_DEVICES');
    expect(w.server.calls.size).toBe(0);
    expect(alice.calls.current).toBeNull();
    expect(FakePeerConnection.instances).toHaveLength(0); // refused before any media opened

    w.device('bob', 'bob-phone');
    const call = await alice.calls.start('bob');
    const again = await alice.calls.start('bob').catch((e: unknown) => e);
    expect(isCallError(again) && again.code).toBe('CALL_IN_PROGRESS');
    await call.hangup();

    const { transport, sync } = w.server.device('erin', 'erin-phone');
    const plain = createCallManager({
      transport,
      sync,
      RTCPeerConnection: FakePeerConnection,
      getUserMedia: fakeGetUserMedia,
    });
    const none = await plain.start('bob').catch((e: unknown) => e);
    expect(isCallError(none) && none.code).toBe('NO_CALL_CRYPTO');
  });

  it('restarts ICE when the connection fails, and comes back', async () => {
    const { alice, bobPhone, server } = world();
    const call = await alice.calls.start('bob');
    await waitFor(() => !!bobPhone.ringing(), 'ringing');
    const theirs = bobPhone.ringing()!;
    await theirs.accept();
    await waitFor(() => call.state === 'connected' && theirs.state === 'connected', 'connected');

    pcOf(call).setConnection('failed');
    pcOf(theirs).setConnection('failed');
    await waitFor(() => call.state === 'reconnecting', 'reconnecting');
    await waitFor(() => call.state === 'connected' && theirs.state === 'connected', 'back');
    expect(server.signals.some((s) => s.kind === 'ice-restart')).toBe(true);
    expect(alice.states).toEqual([
      'dialing',
      'connecting',
      'connected',
      'reconnecting',
      'connected',
    ]);
    await call.hangup();
  });

  it('a restart whose offer is lost is offered again when no answer comes, and comes back', async () => {
    vi.useFakeTimers(); // time moves only as the test says: a slow machine makes no extra offer
    const answerWaitMs = 1_000;
    const w = setup();
    let restartOffers = 0;
    const { calls: alice } = w.device('alice', 'alice-phone', {
      transport: losingFirstRestart(() => restartOffers++),
      timing: { answerWaitMs },
    });
    const bob = w.device('bob', 'bob-phone');
    const { call } = await connectedCall(alice, bob);

    pcOf(call).setConnection('failed'); // only the caller's side restarts
    await waitFor(() => restartOffers === 1, 'the restart offer lost', answerWaitMs / 4);
    // Not offered again before its wait is out: it waits for the answer that may still come.
    await vi.advanceTimersByTimeAsync(answerWaitMs / 2);
    expect([restartOffers, pcOf(call).signalingState]).toEqual([1, 'have-local-offer']);
    // Within one more wait: offered again, answered, connected (a third offer would need two).
    await waitFor(
      () => call.state === 'connected' || call.state === 'ended',
      'settled',
      answerWaitMs,
    );
    expect(call.state).toBe('connected');
    expect(restartOffers).toBe(2);
    expect(pcOf(call).signalingState).toBe('stable');
    // Answered: its wait is over, nothing is offered again.
    await vi.advanceTimersByTimeAsync(answerWaitMs * 3);
    expect([restartOffers, call.state]).toEqual([2, 'connected']);
    expect(w.errors.map((e) => (e as Error).message)).toEqual(['fetch failed']); // the lost one
    await call.hangup();
  });

  it('a late answer to a restart offer taken back is not set on the new offer: both sides agree and come back', async () => {
    vi.useFakeTimers();
    const answerWaitMs = 1_000;
    const w = setup();
    let restartOffers = 0;
    let sendFirstAnswer!: () => void;
    const firstAnswerHeld = new Promise<void>((resolve) => (sendFirstAnswer = resolve));
    const { calls: alice } = w.device('alice', 'alice-phone', {
      // The answer to the first offer, slow on its way, goes out as the second offer does.
      transport: countingRestarts(() => {
        if (++restartOffers === 2) sendFirstAnswer();
      }),
      timing: { answerWaitMs },
    });
    let restartAnswers = 0;
    const bob = w.device('bob', 'bob-phone', {
      transport: (own) => ({
        ...own,
        signal: async (input) => {
          if (input.kind === 'ice-restart' && ++restartAnswers === 1) await firstAnswerHeld;
          return own.signal(input);
        },
      }),
    });
    const { call, theirs } = await connectedCall(alice, bob);

    pcOf(call).setConnection('failed'); // only the caller's side restarts
    await waitFor(() => restartOffers === 2, 'the offer made again', answerWaitMs * 2);
    await waitFor(() => call.state === 'connected' || call.state === 'ended', 'settled');
    expect(restartAnswers).toBe(2); // the first answer arrived too, late
    expect([call.state, theirs.state]).toEqual(['connected', 'connected']);
    const [mine, peer] = [pcOf(call), pcOf(theirs)];
    expect([mine.signalingState, peer.signalingState]).toEqual(['stable', 'stable']);
    // Each side holds the description the other uses: the same ICE credentials on both ends.
    expect(mine.remoteDescription).toEqual(peer.localDescription);
    expect(peer.remoteDescription).toEqual(mine.localDescription);
    expect(restartOffers).toBe(2);
    expect(w.errors).toEqual([]);
    await call.hangup();
  });

  it('an answer being set as its wait runs out stands: no rollback meets it, nothing is reported', async () => {
    vi.useFakeTimers();
    const answerWaitMs = 1_000;
    const w = setup();
    let restartOffers = 0;
    const { calls: alice } = w.device('alice', 'alice-phone', {
      transport: countingRestarts(() => restartOffers++),
      timing: { answerWaitMs },
    });
    const bob = w.device('bob', 'bob-phone');
    const { call, theirs } = await connectedCall(alice, bob);

    const release = pcOf(call).holdAnswers();
    pcOf(call).setConnection('failed');
    await waitFor(() => pcOf(call).heldAnswers === 1, 'the answer being set', answerWaitMs / 2);
    await vi.advanceTimersByTimeAsync(answerWaitMs); // its offer's wait runs out meanwhile
    release();
    await waitFor(() => call.state === 'connected' || call.state === 'ended', 'settled');
    expect(call.state).toBe('connected');
    expect(restartOffers).toBe(1);
    expect(pcOf(call).remoteDescription).toEqual(pcOf(theirs).localDescription);
    expect(w.errors).toEqual([]);
    await call.hangup();
  });

  it('a restart while a lost restart offer waits takes that offer back: both sides come back', async () => {
    const w = setup();
    let restartOffers = 0;
    const { calls: alice } = w.device('alice', 'alice-phone', {
      transport: losingFirstRestart(() => restartOffers++),
      // Past the connect timeout: only the second restart can bring the call back in time.
      timing: { answerWaitMs: 60_000 },
    });
    const bob = w.device('bob', 'bob-phone');
    const { call, theirs } = await connectedCall(alice, bob);

    pcOf(call).setConnection('failed'); // the caller's restart offer is lost
    await waitFor(() => pcOf(call).signalingState === 'have-local-offer', 'offer pending');
    await waitFor(() => restartOffers === 1, 'the restart offer lost');
    pcOf(theirs).setConnection('failed'); // the callee's restart offer: a collision for the caller
    const fromBob = () => w.server.signals.filter((s) => s.from === 'bob-phone');
    await waitFor(() => fromBob().some((s) => s.kind === 'ice-restart'), "the callee's offer");
    pcOf(call).setConnection('failed'); // the caller tries again
    await waitFor(
      () => (call.state === 'connected' && theirs.state === 'connected') || call.state === 'ended',
      'settled',
    );
    expect([call.state, theirs.state]).toEqual(['connected', 'connected']);
    expect([pcOf(call).signalingState, pcOf(theirs).signalingState]).toEqual(['stable', 'stable']);
    await call.hangup();
  });

  it("an ICE restart near the TURN credentials' expiry sets fresh ones first", async () => {
    // Credentials for 30 s: within the minute before expiry from the start.
    const w = setup({ iceTtlSeconds: 30 });
    const alice = w.device('alice', 'alice-phone');
    const bob = w.device('bob', 'bob-phone');
    const { call, theirs } = await connectedCall(alice.calls, bob);
    expect(pcOf(call).configurations).toEqual([]);

    pcOf(call).setConnection('failed');
    pcOf(theirs).setConnection('failed');
    await waitFor(() => call.state === 'connected' && theirs.state === 'connected', 'back');
    const usernames = (pc: FakePeerConnection) =>
      pc.configurations.map((c) => (c.iceServers as { username?: string }[])[1]!.username);
    // Two fetches at the start (caller, callee), then one new set each before the restart.
    expect([...usernames(pcOf(call)), ...usernames(pcOf(theirs))].sort()).toEqual([
      'fetch-3',
      'fetch-4',
    ]);
    await call.hangup();
  });

  it('gives up as failed when ICE never comes back', async () => {
    const w = setup();
    const { transport, sync } = w.server.device('alice', 'alice-phone');
    const alice = createCallManager({
      transport,
      sync,
      crypto: addressedCrypto('alice-phone'),
      RTCPeerConnection: FakePeerConnection,
      getUserMedia: fakeGetUserMedia,
      timing: { ...timing, connectTimeoutMs: 60 },
    });
    w.managers.push(alice);
    const bob = w.device('bob', 'bob-phone');
    const call = await alice.start('bob');
    await waitFor(() => !!bob.ringing(), 'ringing');
    await bob.ringing()!.accept();
    await waitFor(() => call.state === 'connected', 'connected');
    w.server.dropSignals(); // the restart's offer never reaches bob
    pcOf(call).setConnection('failed');
    await waitFor(() => call.state === 'ended', 'given up');
    expect(call.endReason).toBe('failed');
    expect(w.server.calls.get(call.id)).toMatchObject({ state: 'failed', endReason: 'ice_failed' });
  });

  it('mute, and video on (renegotiated) and off (camera released) in an audio call; two taps at once open one camera', async () => {
    const { alice, bobPhone, server } = world();
    const call = await alice.calls.start('bob', { media: 'audio' });
    await waitFor(() => !!bobPhone.ringing(), 'ringing');
    const theirs = bobPhone.ringing()!;
    await theirs.accept();
    await waitFor(() => call.state === 'connected' && theirs.state === 'connected', 'connected');
    expect(call.videoEnabled).toBe(false);

    call.setMuted(true);
    expect(call.muted).toBe(true);
    expect(call.localStream!.getAudioTracks()[0]!.enabled).toBe(false);
    call.setMuted(false);
    expect(call.localStream!.getAudioTracks()[0]!.enabled).toBe(true);

    await call.setVideoEnabled(true);
    await waitFor(() => (theirs.remoteStream?.getVideoTracks().length ?? 0) === 1, 'video arrives');
    // The callee's answer goes out after its side already shows the video: wait for it too.
    const renegotiations = () => server.signals.filter((s) => s.kind === 'renegotiate');
    await waitFor(() => renegotiations().length >= 2, 'the answer to the renegotiation');
    expect(renegotiations()).toHaveLength(2); // offer, answer
    const camera = call.localStream!.getVideoTracks()[0] as FakeTrack;

    await call.setVideoEnabled(false);
    expect(camera.stopped).toBe(true);
    expect(call.videoEnabled).toBe(false);
    expect(pcOf(call).senders.find((s) => s.kind === 'video')!.track).toBeNull();
    await call.setVideoEnabled(true); // the same sender again: no renegotiation
    expect(server.signals.filter((s) => s.kind === 'renegotiate')).toHaveLength(2);
    expect(call.state).toBe('connected');

    // Two taps at once: one camera opened, and off releases it.
    await call.setVideoEnabled(false);
    const opened = () =>
      (call.localStream!.getVideoTracks() as FakeTrack[]).filter((t) => !t.stopped).length;
    await Promise.all([call.setVideoEnabled(true), call.setVideoEnabled(true)]);
    expect(opened()).toBe(1);
    const live = call.localStream!.getVideoTracks()[0] as FakeTrack;
    await call.setVideoEnabled(false);
    expect(live.stopped).toBe(true);
    expect(call.localStream!.getVideoTracks()).toHaveLength(0);
    await call.hangup();
  });

  it('perfect negotiation: both add video at once and settle on one shared description', async () => {
    const { alice, bobPhone } = world();
    const call = await alice.calls.start('bob', { media: 'audio' });
    await waitFor(() => !!bobPhone.ringing(), 'ringing');
    const theirs = bobPhone.ringing()!;
    await theirs.accept();
    await waitFor(() => call.state === 'connected' && theirs.state === 'connected', 'connected');

    await Promise.all([call.setVideoEnabled(true), theirs.setVideoEnabled(true)]);
    await waitFor(
      () =>
        (call.remoteStream?.getVideoTracks().length ?? 0) === 1 &&
        (theirs.remoteStream?.getVideoTracks().length ?? 0) === 1 &&
        pcOf(call).signalingState === 'stable' &&
        pcOf(theirs).signalingState === 'stable',
      'both see video',
    );
    expect(call.state).toBe('connected');
    expect(theirs.state).toBe('connected');
    await call.hangup();
  });

  it("connects when the callee's candidates overtake the stored call.accepted", async () => {
    const { alice, bobPhone, server } = world({ durableDelayMs: 60 });
    const call = await alice.calls.start('bob');
    await waitFor(() => !!bobPhone.ringing(), 'ringing');
    const theirs = bobPhone.ringing()!;
    await theirs.accept();
    await waitFor(() => server.signals.some((s) => s.from === 'bob-phone'), 'bob signals');
    expect(call.state).toBe('dialing'); // the answer is still on its way
    await waitFor(() => call.state === 'connected' && theirs.state === 'connected', 'connected');
    await call.hangup();
  });

  it('two devices answer at once: one connects, the other ends answered elsewhere', async () => {
    const { alice, bobPhone, bobLaptop } = world();
    const call = await alice.calls.start('bob');
    await waitFor(() => !!bobPhone.ringing() && !!bobLaptop.ringing(), 'ringing');
    const [phone, laptop] = [bobPhone.ringing()!, bobLaptop.ringing()!];
    await Promise.all([phone.accept(), laptop.accept()]);
    await waitFor(() => call.state === 'connected', 'connected');
    const states = [phone, laptop].map((c) => `${c.state}:${c.endReason ?? ''}`).sort();
    await waitFor(() => [phone, laptop].some((c) => c.state === 'connected'), 'one connected');
    expect(states).toContain('ended:answered_elsewhere');
    const loser = [phone, laptop].find((c) => c.state === 'ended')!;
    expect(loser.localStream?.getTracks().every((t) => (t as FakeTrack).stopped) ?? true).toBe(
      true,
    );
    await call.hangup();
  });

  it('a device that fails to answer, or closes while ringing, ends there only: the caller and my other devices go on', async () => {
    const w = setup();
    const alice = w.device('alice', 'alice-phone');
    const bobPhone = w.device('bob', 'bob-phone');
    // The tablet cannot seal its answer (say its session with Alice's phone is broken).
    const bobTablet = w.device('bob', 'bob-tablet', {
      crypto: (own) => ({
        ...own,
        encrypt: () => Promise.reject(new Error('no session with that device')),
      }),
    });
    const bobLaptop = w.device('bob', 'bob-laptop');
    const call = await alice.calls.start('bob');
    const everyone = () => [bobPhone, bobTablet, bobLaptop].every((d) => !!d.ringing());
    await waitFor(everyone, 'three devices ringing');

    const error = await bobTablet
      .ringing()!
      .accept()
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Error);
    expect(bobTablet.ringing()!.state).toBe('ended');
    expect(bobTablet.ringing()!.endReason).toBe('failed');
    await bobLaptop.calls.close();
    expect(bobLaptop.ringing()!.state).toBe('ended');
    // Nothing went to the server: the call still rings.
    expect(w.server.log.some(({ event }) => event.type === 'call.ended')).toBe(false);
    expect(call.state).toBe('dialing');
    expect(bobPhone.ringing()!.state).toBe('ringing');

    await bobPhone.ringing()!.accept();
    await waitFor(() => call.state === 'connected', 'connected on the phone');
    await call.hangup();
  });

  it('leave() (the tab closing) hangs up with one request that outlives the page; a call ringing here only stops ringing here', async () => {
    const w = setup();
    const outliving: string[] = [];
    const watching = (own: CallTransport): CallTransport => ({
      ...own,
      hangup: (callId, reason, options) => {
        if (options?.outlivePage) outliving.push(callId);
        return own.hangup(callId, reason, options);
      },
    });
    const alice = w.device('alice', 'alice-phone', { transport: watching });
    const bobPhone = w.device('bob', 'bob-phone', { transport: watching });
    const bobLaptop = w.device('bob', 'bob-laptop', { transport: watching });
    const call = await alice.calls.start('bob');
    await waitFor(() => !!bobPhone.ringing() && !!bobLaptop.ringing(), 'ringing');
    bobLaptop.calls.leave();
    expect(bobLaptop.ringing()).toMatchObject({ state: 'ended', endReason: 'missed' });
    expect(outliving).toEqual([]);
    expect(bobPhone.ringing()!.state).toBe('ringing');

    await bobPhone.ringing()!.accept();
    await waitFor(() => call.state === 'connected', 'connected');
    alice.calls.leave();
    expect(call).toMatchObject({ state: 'ended', endReason: 'hangup' });
    expect(outliving).toEqual([call.id]);
    await waitFor(() => bobPhone.ringing()!.state === 'ended', 'hung up over there');
    expect(bobPhone.ringing()!.endReason).toBe('hangup');
  });

  it('in a browser pagehide leaves (unless turned off); a closed manager stops listening', async () => {
    // A page's globals, on an EventTarget of the test's own.
    const page = new EventTarget();
    const removed: string[] = [];
    const g = globalThis as Record<string, unknown>;
    const saved = [g.document, g.addEventListener, g.removeEventListener];
    g.document = {};
    g.addEventListener = page.addEventListener.bind(page);
    g.removeEventListener = (
      type: string,
      listener: Parameters<EventTarget['removeEventListener']>[1],
    ) => {
      removed.push(type);
      page.removeEventListener(type, listener);
    };
    try {
      const w = setup();
      const alice = w.device('alice', 'alice-phone');
      const bobHangups: string[] = [];
      const bobPhone = w.device('bob', 'bob-phone', {
        leaveOnPageHide: false,
        transport: (own) => ({
          ...own,
          hangup: (callId, reason, options) => {
            bobHangups.push(callId);
            return own.hangup(callId, reason, options);
          },
        }),
      });
      const { call, theirs } = await connectedCall(alice.calls, bobPhone);
      page.dispatchEvent(new Event('pagehide'));
      expect(call).toMatchObject({ state: 'ended', endReason: 'hangup' });
      await waitFor(() => theirs.state === 'ended', 'hung up over there');
      expect(theirs.endReason).toBe('hangup');
      expect(bobHangups).toEqual([]); // its page hid too, but it was told not to leave
      await alice.calls.close();
      expect(removed).toEqual(['pagehide']);
    } finally {
      [g.document, g.addEventListener, g.removeEventListener] = saved;
    }
  });

  it('leave() while the start is on its way hangs up the call by the id it was sent with', async () => {
    const w = setup();
    let answer = () => undefined as void;
    const answerHeld = new Promise<void>((resolve) => (answer = resolve));
    const alice = w.device('alice', 'alice-phone', {
      transport: (own) => ({
        ...own,
        start: async (input) => {
          const placed = await own.start(input);
          await answerHeld; // placed and ringing; the reply still on its way
          return placed;
        },
      }),
    });
    const bobPhone = w.device('bob', 'bob-phone');
    const starting = alice.calls.start('bob').catch((e: unknown) => e);
    await waitFor(() => !!bobPhone.ringing(), 'ringing');
    alice.calls.leave();
    await waitFor(() => bobPhone.ringing()!.state === 'ended', 'stops ringing over there');
    expect(w.server.log.map(({ event }) => event.type)).toContain('call.ended');
    answer();
    expect(await starting).toMatchObject({ state: 'ended', endReason: 'hangup' });
  });

  it('a ring whose end never reached the devices ends anyway: the server is asked', async () => {
    const w = setup({ ringCheckMs: 40 });
    const alice = w.device('alice', 'alice-phone');
    const bob = w.device('bob', 'bob-phone');
    const call = await alice.calls.start('bob');
    await waitFor(() => !!bob.ringing(), 'ringing');
    w.server.expireQuietly(call.id);
    await waitFor(
      () => call.state === 'ended' && bob.ringing()!.state === 'ended',
      'both stop ringing',
    );
    expect([call.endReason, bob.ringing()!.endReason]).toEqual(['missed', 'missed']);
    expect(w.server.log.some(({ event }) => event.type === 'call.ended')).toBe(false);
  });

  it('a device that missed the answer elsewhere stops ringing once the server is asked', async () => {
    const w = setup({ ringCheckMs: 40 });
    const alice = w.device('alice', 'alice-phone');
    const phone = w.device('bob', 'bob-phone');
    const laptop = w.device('bob', 'bob-laptop');
    const call = await alice.calls.start('bob');
    await waitFor(() => !!phone.ringing() && !!laptop.ringing(), 'both ringing');
    w.server.silence('bob-laptop');
    await phone.ringing()!.accept();
    await waitFor(() => call.state === 'connected', 'connected on the phone');
    await waitFor(() => laptop.ringing()!.state === 'ended', 'the laptop stops ringing');
    expect(laptop.ringing()!.endReason).toBe('answered_elsewhere');
    expect(call.state).toBe('connected');
    await call.hangup();
  });

  it('a caller that missed the answer (its stream down) hangs up once the server is asked', async () => {
    const w = setup({ ringCheckMs: 40 });
    const alice = w.device('alice', 'alice-phone');
    const phone = w.device('bob', 'bob-phone');
    const call = await alice.calls.start('bob');
    await waitFor(() => !!phone.ringing(), 'ringing');
    w.server.silence('alice-phone');
    const answered = phone.ringing()!;
    await answered.accept();
    // The answer cannot be had again: the caller ends it for both rather than dial on for ever.
    await waitFor(() => call.state === 'ended', 'the caller gives up');
    expect(call.endReason).toBe('failed');
    await waitFor(() => answered.state === 'ended', 'the callee hears the hangup');
    const ended = w.server.log.find(({ event }) => event.type === 'call.ended')?.event;
    expect(ended).toMatchObject({ call: { state: 'ended', endReason: 'user_hangup' } });
  });

  it('a call whose end never reached the device (its stream down) ends as recorded once a heartbeat is refused', async () => {
    const { alice, bobPhone, server } = world();
    const call = await alice.calls.start('bob');
    await waitFor(() => !!bobPhone.ringing(), 'ringing');
    const theirs = bobPhone.ringing()!;
    await theirs.accept();
    await waitFor(() => call.state === 'connected' && theirs.state === 'connected', 'connected');
    server.silence('alice-phone');
    await theirs.hangup();
    await waitFor(() => call.state === 'ended', 'the caller learns of the end');
    expect(call.endReason).toBe('hangup');
    expect(server.calls.get(call.id)).toMatchObject({ state: 'ended', endReason: 'user_hangup' });
  });

  it('a resync that skipped the end of a call ends it as recorded', async () => {
    const w = setup();
    const { calls: alice } = w.device('alice', 'alice-phone', {
      timing: { heartbeatMs: 60_000 }, // no heartbeat to be refused meanwhile
    });
    const bob = w.device('bob', 'bob-phone');
    const { call, theirs } = await connectedCall(alice, bob);
    w.server.silence('alice-phone');
    await theirs.hangup();
    w.server.resync('alice-phone');
    await waitFor(() => call.state === 'ended', 'the caller learns of the end');
    expect(call.endReason).toBe('hangup');
  });

  it('a camera that fails on accept leaves the call ringing, to try again or decline', async () => {
    const w = setup();
    const alice = w.device('alice', 'alice-phone');
    const { transport, sync } = w.server.device('bob', 'bob-phone');
    let denied = true;
    const bob = createCallManager({
      transport,
      sync,
      crypto: addressedCrypto('bob-phone'),
      RTCPeerConnection: FakePeerConnection,
      getUserMedia: async (c) => {
        if (denied) throw new Error('NotAllowedError');
        return fakeGetUserMedia(c);
      },
      timing,
    });
    w.managers.push(bob);
    const rings: Call[] = [];
    bob.onIncoming((c) => rings.push(c));
    const call = await alice.calls.start('bob', { media: 'video' });
    await waitFor(() => rings.length === 1, 'ringing');
    const error = await rings[0]!.accept().catch((e: unknown) => e);
    expect(isCallError(error) && error.code).toBe('MEDIA_FAILED');
    expect(rings[0]!.state).toBe('ringing');
    denied = false;
    await rings[0]!.accept();
    await waitFor(() => call.state === 'connected', 'connected after all');
    await call.hangup();
  });

  it('a device whose answer is taken, though the reply to it is lost, hears of its own answer and hangs up rather than leave the caller connecting', async () => {
    const w = setup();
    const alice = w.device('alice', 'alice-phone');
    const { transport, sync } = w.server.device('bob', 'bob-phone');
    // The server takes the answer and tells every device of Bob's (this one too) who answered;
    // that event arrives here before the reply, which is lost.
    const toldWhoAnswered = new Promise<void>((resolve) =>
      sync.onEvent((event) => {
        if (event.type === 'call.answered_elsewhere') resolve();
      }),
    );
    const bob = createCallManager({
      transport: {
        ...transport,
        accept: async (input) => {
          await transport.accept(input);
          await toldWhoAnswered;
          throw new TypeError('fetch failed');
        },
      },
      sync,
      crypto: addressedCrypto('bob-phone'),
      RTCPeerConnection: FakePeerConnection,
      getUserMedia: fakeGetUserMedia,
      timing,
    });
    w.managers.push(bob);
    const rings: Call[] = [];
    bob.onIncoming((c) => rings.push(c));
    const call = await alice.calls.start('bob');
    await waitFor(() => rings.length === 1, 'ringing');

    const error = await rings[0]!.accept().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TypeError);
    expect([rings[0]!.state, rings[0]!.endReason]).toEqual(['ended', 'failed']);
    expect(w.server.calls.get(call.id)).toMatchObject({ state: 'ended', endReason: 'user_hangup' });
    await waitFor(() => call.state === 'ended', 'the caller hears the hangup');
    expect(call.endReason).toBe('hangup');
  });

  it('a device hung up while its answer is on its way hangs up the answered call, even if that hangup found it ringing', async () => {
    const w = setup();
    const alice = w.device('alice', 'alice-phone');
    let answering!: () => void;
    const onItsWay = new Promise<void>((resolve) => (answering = resolve));
    let hangingUp!: () => void;
    const hungUp = new Promise<void>((resolve) => (hangingUp = resolve));
    let answered!: () => void;
    const taken = new Promise<void>((resolve) => (answered = resolve));
    let raced = false;
    const { incoming: rings } = w.device('bob', 'bob-phone', {
      transport: (own) => ({
        ...own,
        accept: async (input) => {
          answering();
          await hungUp;
          const accepted = await own.accept(input);
          answered();
          return accepted;
        },
        // The server read the call ringing, then the answer committed: the decline it made of
        // the hangup found no ringing call (CONFLICT, as an older server answers).
        hangup: async (callId, reason) => {
          if (raced) return own.hangup(callId, reason);
          raced = true;
          hangingUp();
          await taken;
          throw serverError('CONFLICT');
        },
      }),
    });
    const call = await alice.calls.start('bob');
    await waitFor(() => rings.length === 1, 'ringing');

    const accepting = rings[0]!.accept();
    await onItsWay;
    await rings[0]!.hangup();
    await accepting;
    expect([rings[0]!.state, rings[0]!.endReason]).toEqual(['ended', 'hangup']);
    expect(w.server.calls.get(call.id)).toMatchObject({ state: 'ended', endReason: 'user_hangup' });
    await waitFor(() => call.state === 'ended', 'the caller hears the hangup');
    expect(call.endReason).toBe('hangup');
  });

  it('muted before the microphone is opened (ringing, or dialing) stays muted once it is', async () => {
    const { alice, bobPhone } = world();
    const placing = alice.calls.start('bob');
    alice.calls.current!.setMuted(true); // dialing: the microphone is not open yet
    const call = await placing;
    expect(call.localStream!.getAudioTracks().map((t) => t.enabled)).toEqual([false]);

    await waitFor(() => !!bobPhone.ringing(), 'ringing');
    const theirs = bobPhone.ringing()!;
    theirs.setMuted(true);
    await theirs.accept();
    expect(theirs.muted).toBe(true);
    expect(theirs.localStream!.getAudioTracks().map((t) => t.enabled)).toEqual([false]);
    theirs.setMuted(false);
    expect(theirs.localStream!.getAudioTracks().map((t) => t.enabled)).toEqual([true]);
    await call.hangup();
  });

  it('a ring check that came while the camera was opened is made again when that fails: the call does not ring for ever', async () => {
    vi.useFakeTimers();
    const ringCheckMs = 1_000;
    const w = setup({ ringCheckMs });
    const alice = w.device('alice', 'alice-phone');
    const { transport, sync } = w.server.device('bob', 'bob-phone');
    let deny!: () => void;
    const bob = createCallManager({
      transport,
      sync,
      crypto: addressedCrypto('bob-phone'),
      RTCPeerConnection: FakePeerConnection,
      getUserMedia: () =>
        new Promise((_resolve, reject) => (deny = () => reject(new Error('NotAllowedError')))),
      timing: { ...timing, ringCheckMs },
    });
    w.managers.push(bob);
    const rings: Call[] = [];
    bob.onIncoming((c) => rings.push(c));
    const placing = alice.calls.start('bob');
    await vi.waitFor(() => expect(rings).toHaveLength(1));
    const call = await placing;

    const accepting = rings[0]!.accept().catch((e: unknown) => e);
    await vi.waitFor(() => expect(deny).toBeDefined());
    await vi.advanceTimersByTimeAsync(ringCheckMs); // the check finds it answering: no question
    deny();
    const error = await accepting;
    expect(isCallError(error) && error.code).toBe('MEDIA_FAILED');
    expect(rings[0]!.state).toBe('ringing');

    // The ring ends on the server, and the news of it never comes.
    w.server.expireQuietly(call.id);
    await vi.advanceTimersByTimeAsync(ringCheckMs);
    await vi.waitFor(() => expect(rings[0]!.state).toBe('ended'));
    expect(rings[0]!.endReason).toBe('missed');
  });

  it('an onError handler that throws stops neither the others nor the call', async () => {
    const { alice, bobPhone, errors } = world();
    const heard: unknown[] = [];
    alice.calls.onError(() => {
      throw new Error('the app failed to show it');
    });
    alice.calls.onError((error) => heard.push(error));
    const render = alice.calls.onChange(() => {
      throw new Error('render failed');
    });
    const call = await alice.calls.start('bob');
    expect(call.state).toBe('dialing');
    expect(heard.length).toBeGreaterThan(0);
    expect(heard).toEqual(errors);
    expect(heard.every((e) => (e as Error).message === 'render failed')).toBe(true);

    render.unsubscribe();
    await waitFor(() => !!bobPhone.ringing(), 'ringing');
    await bobPhone.ringing()!.accept();
    await waitFor(() => call.state === 'connected', 'connected');
    await call.hangup();
    expect(call.state).toBe('ended');
  });
});
