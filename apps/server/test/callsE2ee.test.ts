/**
 * Calls between real SDK clients with E2EE on and no `calls.crypto`: the default pairwise
 * encryption carries SDP and ICE through a real server, and neither the database nor what the
 * server relays holds any of it. And a device that starts cold (no cursor) rings for a call
 * placed before it connected.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import WebSocket from 'ws';
import {
  createMemoryCryptoStore,
  type Call,
  type CallState,
  type CryptoStore,
  type MvpClient,
} from '@mvp/sdk';
import { registerUser, type Account } from './helpers/accounts';
import { eventQueue } from './helpers/collect';
import { backendLabel } from './helpers/env';
import { fakeWebRtc } from './helpers/fakeWebRtc';
import { startServer, type TestServer } from './helpers/startServer';

type Device = {
  client: MvpClient;
  deviceId: string;
  webrtc: ReturnType<typeof fakeWebRtc>;
  incoming: ReturnType<typeof eventQueue<Call>>;
  /** Every call payload the server handed this device (offers, answers, signals), as sent. */
  relayed: string[];
  errors: unknown[];
};

describe(`calls encrypted end to end by default (${backendLabel})`, () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startServer();
  });
  afterAll(() => t.stop());

  /** An app on one device of `account`: E2EE on (its default store, or `store`), calls default. */
  const device = async (account: Account, label: string, store?: CryptoStore) => {
    const webrtc = fakeWebRtc(label);
    const client = t.newClient({
      getToken: () => account.accessToken,
      WebSocket,
      crypto: store ? { store } : {},
      calls: {
        RTCPeerConnection: webrtc.RTCPeerConnection,
        getUserMedia: webrtc.getUserMedia,
        timing: { candidateBatchMs: 5 },
      },
    });
    const d: Device = {
      client,
      deviceId: '',
      webrtc,
      incoming: eventQueue<Call>(),
      relayed: [],
      errors: [],
    };
    // Registered before the stream starts, as an app does at launch.
    client.calls.onIncoming((call) => d.incoming.push(call));
    client.calls.onError((error) => d.errors.push(error));
    client.e2ee.onError((error) => d.errors.push(error));
    client.sync.onEvent((event) => {
      if (event.type === 'call.invite' && event.offer) d.relayed.push(event.offer);
      if (event.type === 'call.accepted') d.relayed.push(event.answer);
      if (event.type === 'call.signal') d.relayed.push(event.ciphertext);
    });
    await client.e2ee.setup();
    d.deviceId = (await client.api.sessions.list.query()).sessions.find(
      (s) => s.current,
    )!.device.id;
    return d;
  };

  /** Resolves when the call reaches `state` (or at once if it has). */
  const reaches = (call: Call, state: CallState) =>
    new Promise<void>((resolve, reject) => {
      const check = (c: Call) => {
        if (c.state === state) {
          sub.unsubscribe();
          resolve();
        } else if (c.state === 'ended') {
          sub.unsubscribe();
          reject(new Error(`ended (${c.endReason ?? '?'}) before ${state}`));
        }
      };
      const sub = call.onChange(check);
      check(call);
    });

  /** The bytes behind every string in a stored JSON payload, as text (base64 decoded too). */
  const readable = (value: string) => {
    const forms = [value];
    const walk = (v: unknown): void => {
      if (typeof v === 'string') forms.push(v, Buffer.from(v, 'base64').toString('latin1'));
      else if (v && typeof v === 'object') Object.values(v).forEach(walk);
    };
    try {
      walk(JSON.parse(value));
    } catch {
      // not JSON: the text itself is all there is
    }
    return forms.join('\n');
  };

  it('SDP and ICE arrive intact at the peer, and the server never holds them readable', async () => {
    const [alice, bob] = [await registerUser(t), await registerUser(t)];
    const secret = `sdp-secret-${randomUUID()}`;
    const a = await device(alice, `${secret}-alice`);
    const b = await device(bob, `${secret}-bob`);

    const call = await a.client.calls.start(bob.userId, { media: 'video' });
    const ringing = await b.incoming.next(10_000);
    expect(ringing).toMatchObject({ id: call.id, state: 'ringing', peerUserId: alice.userId });
    await ringing.accept();
    await Promise.all([reaches(call, 'connected'), reaches(ringing, 'connected')]);

    // Each side holds exactly what the other made: the offer, the answer, and (trickled after
    // the answer, in batches) every candidate.
    const [pcA] = a.webrtc.instances;
    const [pcB] = b.webrtc.instances;
    expect(pcB!.remoteDescription).toEqual(pcA!.localDescription);
    expect(pcA!.remoteDescription).toEqual(pcB!.localDescription);
    expect(pcB!.remoteDescription!.sdp).toContain(`a=offer:${secret}-alice`);
    expect(pcA!.remoteDescription!.sdp).toContain(`a=answer:${secret}-bob`);
    await vi.waitFor(
      () => {
        expect(pcB!.added).toEqual(pcA!.gathered);
        expect(pcA!.added).toEqual(pcB!.gathered);
      },
      { timeout: 10_000, interval: 20 },
    );
    expect(pcA!.gathered).toHaveLength(2);

    await call.hangup();
    await reaches(ringing, 'ended');
    expect(ringing.endReason).toBe('hangup');

    // What the server relayed, and everything it stored about these two, reads as noise.
    expect(a.relayed.length).toBeGreaterThanOrEqual(2); // the answer, and candidates
    expect(b.relayed.length).toBeGreaterThanOrEqual(2); // the offer, and candidates
    const db = t.server.infra.ports.db;
    const users = [alice.userId, bob.userId];
    const events = await db
      .selectFrom('user_events')
      .select(['type', 'payload'])
      .where('user_id', 'in', users)
      .execute();
    expect(events.map((e) => e.type)).toEqual(expect.arrayContaining(['call.invite']));
    const calls = await db
      .selectFrom('calls')
      .selectAll()
      .where('caller_id', 'in', users)
      .execute();
    expect(calls).toHaveLength(1);
    const stored = [...events.map((e) => e.payload), ...calls.map((c) => JSON.stringify(c))];
    for (const text of [...a.relayed, ...b.relayed, ...stored])
      expect(readable(text)).not.toContain(secret);
    expect([...a.errors, ...b.errors]).toEqual([]);
  });

  it('a device that starts cold rings for a call placed before it connected', async () => {
    const [carol, dave] = [await registerUser(t), await registerUser(t)];
    const c = await device(carol, 'carol');
    // Dave's phone publishes its keys, then the app is closed (keys kept, no cursor kept).
    const store = createMemoryCryptoStore();
    const first = await device(dave, 'dave', store);
    await first.client.close();

    const call = await c.client.calls.start(dave.userId, { media: 'audio' });
    expect(call.state).toBe('dialing');
    const api = t.newClient({ getToken: () => dave.accessToken }).api;
    const listed = (await api.sync.snapshot.query()).ringingCalls;
    expect(listed).toEqual([
      {
        call: expect.objectContaining({ id: call.id, state: 'ringing', direction: 'incoming' }),
        callerDeviceId: c.deviceId,
        offer: expect.any(String),
      },
    ]);
    // Only where it rings: not for the caller.
    expect((await c.client.api.sync.snapshot.query()).ringingCalls).toEqual([]);

    // Dave opens the app again: a cold start (snapshot, then the stream from its cursor).
    const again = await device(dave, 'dave again', store);
    const ringing = await again.incoming.next(10_000);
    expect(ringing).toMatchObject({ id: call.id, state: 'ringing', peerUserId: carol.userId });
    await ringing.accept(); // the offer from the snapshot decrypts with the kept keys
    await Promise.all([reaches(call, 'connected'), reaches(ringing, 'connected')]);
    expect((await api.sync.snapshot.query()).ringingCalls).toEqual([]); // answered: no more

    await ringing.hangup();
    await reaches(call, 'ended');
    expect(call.endReason).toBe('hangup');
    expect([...c.errors, ...again.errors]).toEqual([]);
  });
  it('glare with no session yet: both call at once, one call goes on and both connect in it', async () => {
    const [alice, bob] = [await registerUser(t), await registerUser(t)];
    const a = await device(alice, 'alice');
    const b = await device(bob, 'bob');
    const [aCall, bCall] = await Promise.all([
      a.client.calls.start(bob.userId, { media: 'audio' }),
      b.client.calls.start(alice.userId, { media: 'audio' }),
    ]);
    const [winner, loser, loserSide] =
      alice.userId < bob.userId ? [aCall, bCall, b] : [bCall, aCall, a];
    await reaches(loser, 'ended');
    expect(loser.endReason).toBe('glare');
    const theirs = await loserSide.incoming.next(10_000); // answered by the manager itself
    expect(theirs.id).toBe(winner.id);
    await Promise.all([reaches(winner, 'connected'), reaches(theirs, 'connected')]);
    await winner.hangup();
    await reaches(theirs, 'ended');
    expect([...a.errors, ...b.errors]).toEqual([]);
  });
});
