import { createHmac } from 'node:crypto';
import { uuidv7 } from 'uuidv7';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCallTimeoutsOnce, turnCredentials } from '@mvp/api';
import { configFromEnv, defaultConfig } from '../src/index';
import { EnvError, parseEnv } from '../src/env';
import {
  clientWithToken,
  currentDeviceId,
  PASSWORD,
  registerUser,
  signInOnAnotherDevice,
  type Account,
} from './helpers/accounts';
import { backendLabel } from './helpers/env';
import { startServer, type TestServer } from './helpers/startServer';
import { openStream } from './helpers/sync';
import { codeOf } from './helpers/errors';

const b64 = (text: string) => Buffer.from(text).toString('base64');
const TURN_SECRET = 'coturn-shared-secret-42';

describe('TURN credentials and ICE configuration', () => {
  it("match coturn's use-auth-secret formula on a fixed vector", () => {
    // Computed independently: base64(HMAC-SHA1(secret, "<expiry>:<userId>")).
    expect(
      turnCredentials(TURN_SECRET, '0190d4a2-0000-7000-8000-000000000001', 1_700_000_000),
    ).toEqual({
      username: '1700000000:0190d4a2-0000-7000-8000-000000000001',
      credential: 'ZK8YjnIzO8IldgZ733jm9eBHhOM=',
    });
  });

  it('refuses a malformed TURN configuration at start-up with a clear message', () => {
    expect(() => parseEnv({ MVP_TURN_URLS: 'http://turn.example.com' })).toThrow(
      /MVP_TURN_URLS: "http:\/\/turn\.example\.com": expected stun:host/,
    );
    expect(() => configFromEnv(parseEnv({ MVP_TURN_URLS: 'turn:turn.example.com:3478' }))).toThrow(
      'MVP_TURN_URLS needs MVP_TURN_SECRET (coturn static-auth-secret)',
    );
    expect(() => parseEnv({ MVP_TURN_SECRET: 'short' })).toThrow(/MVP_TURN_SECRET/);
    // A secret alone would silently hand out no TURN at all.
    expect(() => configFromEnv(parseEnv({ MVP_TURN_SECRET: TURN_SECRET }))).toThrow(
      'MVP_TURN_SECRET needs MVP_TURN_URLS (the turn: and turns: URLs of coturn)',
    );
    expect(
      configFromEnv(
        parseEnv({ MVP_TURN_SECRET: TURN_SECRET, MVP_TURN_URLS: 'turn:turn.example.com:3478' }),
      ).calls.turnSecret,
    ).toBe(TURN_SECRET);
    expect(() => configFromEnv(parseEnv({ MVP_STUN_URLS: 'turn:x.example.com' }))).toThrow(
      /MVP_STUN_URLS takes stun: and stuns: URLs/,
    );
    expect(() =>
      configFromEnv(
        parseEnv({ MVP_TURN_URLS: 'stuns:x.example.com', MVP_TURN_SECRET: TURN_SECRET }),
      ),
    ).toThrow(/MVP_TURN_URLS takes turn: and turns: URLs/);
  });

  // RFC 7064 / 7065: what browsers' RTCPeerConnection accepts, and nothing it would throw on.
  it.each([
    ['MVP_STUN_URLS', 'stun:stun.example.com'],
    ['MVP_STUN_URLS', 'stun:stun.example.com:3478'],
    ['MVP_STUN_URLS', 'stuns:stun.example.com:5349'],
    ['MVP_STUN_URLS', 'stun:203.0.113.7:3478'],
    ['MVP_STUN_URLS', 'stun:[2001:db8::1]:3478'],
    ['MVP_STUN_URLS', 'stun:localhost:1'],
    ['MVP_TURN_URLS', 'turn:turn.example.com'],
    ['MVP_TURN_URLS', 'turn:turn.example.com:3478?transport=udp'],
    ['MVP_TURN_URLS', 'turn:[::1]:3478?transport=tcp'],
    ['MVP_TURN_URLS', 'turns:turn.example.com:5349?transport=tcp'],
    ['MVP_TURN_URLS', 'turns:turn-1.example.com:65535'],
  ])('accepts %s=%s', (name, url) => {
    expect(parseEnv({ [name]: url })[name as 'MVP_STUN_URLS']).toEqual([url]);
  });

  it.each([
    ['MVP_TURN_URLS', 'turn:host:port', /the port must be a number from 1 to 65535/],
    ['MVP_TURN_URLS', 'turn:host:99999', /the port must be a number from 1 to 65535/],
    ['MVP_TURN_URLS', 'turn:host:0', /the port must be a number from 1 to 65535/],
    ['MVP_TURN_URLS', 'turn:host:', /the port must be a number from 1 to 65535/],
    ['MVP_TURN_URLS', 'turn:::', /expected stun:host/],
    ['MVP_STUN_URLS', 'stun:[::1', /expected stun:host/],
    ['MVP_STUN_URLS', 'stun:[not-v6]:3478', /the host must be/],
    ['MVP_STUN_URLS', 'stun:999.1.1.1', /the host must be/],
    ['MVP_STUN_URLS', 'stun:-bad-.example.com', /the host must be/],
    ['MVP_STUN_URLS', 'stun:host?transport=udp', /stun: and stuns: URLs take no \?transport/],
    ['MVP_TURN_URLS', 'turn:host:3478?transport=sctp', /the only query is \?transport=udp/],
    ['MVP_TURN_URLS', 'turn:host:3478?foo=bar', /the only query is \?transport=udp/],
    ['MVP_TURN_URLS', 'turnx:host:3478', /expected stun:host/],
  ])('refuses %s=%s, naming the URL and what is wrong', (name, url, why) => {
    let error: unknown;
    try {
      // Among good ones: the bad one is named, not just the variable.
      parseEnv({
        [name]: `${name === 'MVP_STUN_URLS' ? 'stun:ok.example.com' : 'turn:ok.example.com'},${url}`,
      });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(EnvError);
    const message = (error as EnvError).message;
    expect(message).toMatch(`invalid environment: ${name}: ${JSON.stringify(url)}: `);
    expect(message).toMatch(why);
    expect(message).not.toContain('\n');
  });

  it('keeps a credential written into a URL out of the message', () => {
    expect(() => parseEnv({ MVP_TURN_URLS: 'turn:alice:s3cret@turn.example.com' })).toThrow(
      /^invalid environment: MVP_TURN_URLS: a URL with user@: /,
    );
    expect(() => parseEnv({ MVP_TURN_URLS: 'turn:alice:s3cret@turn.example.com' })).not.toThrow(
      /s3cret/,
    );
  });

  it('in production, refuses the TURN secret compose once defaulted to, in one line', () => {
    const env = {
      MVP_TURN_URLS: 'turn:turn.example.com:3478',
      MVP_TURN_SECRET: 'change-me-turn-secret',
    };
    expect(() => configFromEnv(parseEnv({ ...env, NODE_ENV: 'production' }))).toThrow(
      new EnvError(
        'invalid environment: MVP_TURN_SECRET: the published placeholder is refused in production ' +
          '(anyone could mint TURN credentials); set a random one, e.g. openssl rand -hex 32',
      ),
    );
    // Development keeps working with it (a local compose, an old .env).
    expect(configFromEnv(parseEnv(env)).calls.turnSecret).toBe('change-me-turn-secret');
    const chosen = { ...env, MVP_TURN_SECRET: TURN_SECRET, NODE_ENV: 'production' };
    expect(configFromEnv(parseEnv(chosen)).calls.turnSecret).toBe(TURN_SECRET);
  });

  it("refuses a heartbeat timeout shorter than two of the clients' 30 s beats", () => {
    expect(() => parseEnv({ MVP_CALL_HEARTBEAT_TIMEOUT_SECONDS: '30' })).toThrow(
      /MVP_CALL_HEARTBEAT_TIMEOUT_SECONDS/,
    );
    expect(
      configFromEnv(parseEnv({ MVP_CALL_HEARTBEAT_TIMEOUT_SECONDS: '60' })).calls
        .heartbeatTimeoutMs,
    ).toBe(60_000);
  });

  it('reads the ICE servers limit from the environment, and refuses a malformed one', () => {
    expect(configFromEnv(parseEnv({ MVP_LIMIT_CALL_ICE_ACCOUNT: '5/120' })).calls.iceLimit).toEqual(
      { points: 5, durationSeconds: 120 },
    );
    expect(configFromEnv(parseEnv({})).calls.iceLimit).toEqual({ points: 60, durationSeconds: 60 });
    expect(() => parseEnv({ MVP_LIMIT_CALL_ICE_ACCOUNT: 'lots' })).toThrow(
      /MVP_LIMIT_CALL_ICE_ACCOUNT/,
    );
  });
});

describe(`call sessions (${backendLabel})`, () => {
  let t: TestServer;
  let offsetMs = 0;
  // Set only where a test needs the server's clock to stand still.
  let frozenAt: number | null = null;
  beforeAll(async () => {
    const base = defaultConfig().calls;
    t = await startServer(
      {
        calls: {
          ...base,
          stunUrls: ['stun:stun.example.com:3478'],
          turnUrls: ['turn:turn.example.com:3478?transport=udp', 'turns:turn.example.com:5349'],
          turnSecret: TURN_SECRET,
          maxPayloadBytes: 2048,
          signalLimit: { points: 20, durationSeconds: 60 },
          iceLimit: { points: 3, durationSeconds: 60 },
        },
      },
      { clock: { now: () => (frozenAt ?? Date.now()) + offsetMs } },
    );
  });
  afterAll(() => t.stop());

  const api = (token: string) => clientWithToken(t, token).api;
  const deviceOf = (token: string) => currentDeviceId(t, token);
  const secondDevice = (a: Account) => signInOnAnotherDevice(t, a, 'Laptop');
  /** The stream's next `call.ended` is this call's, ended by a participant's hangup. */
  const endsByHangup = async (
    stream: Awaited<ReturnType<typeof openStream>>,
    callId: string,
    state: 'ended' | 'missed' = 'ended',
  ) =>
    expect((await stream.next('call.ended')).event.call).toMatchObject({
      id: callId,
      state,
      endReason: 'user_hangup',
    });
  const call = async (from: Account, to: Account, devices: string[]) =>
    api(from.accessToken).calls.start.mutate({
      callId: uuidv7(),
      calleeId: to.userId,
      media: 'video',
      offers: devices.map((deviceId) => ({ deviceId, ciphertext: b64(`offer for ${deviceId}`) })),
    });

  it('ICE servers: STUN, and TURN credentials for me that coturn will accept', async () => {
    const alice = await registerUser(t);
    const { iceServers, ttlSeconds } = await api(alice.accessToken).calls.iceServers.query();
    expect(ttlSeconds).toBe(3600);
    expect(iceServers[0]).toEqual({ urls: ['stun:stun.example.com:3478'] });
    const turn = iceServers[1]!;
    expect(turn.urls).toEqual([
      'turn:turn.example.com:3478?transport=udp',
      'turns:turn.example.com:5349',
    ]);
    const [expiry, userId] = turn.username!.split(':');
    expect(userId).toBe(alice.userId);
    expect(Number(expiry) - Date.now() / 1000).toBeGreaterThan(3500);
    expect(turn.credential).toBe(
      createHmac('sha1', TURN_SECRET).update(turn.username!).digest('base64'),
    );
    const rest = await fetch(`${t.server.url}/api/v1/calls/ice-servers`, {
      headers: { authorization: `Bearer ${alice.accessToken}` },
    });
    expect(rest.status).toBe(200);
    // Each answer mints fresh credentials: three per minute per account here.
    await api(alice.accessToken).calls.iceServers.query();
    expect(await codeOf(api(alice.accessToken).calls.iceServers.query())).toBe('TOO_MANY_REQUESTS');
    const bob = await registerUser(t);
    expect((await api(bob.accessToken).calls.iceServers.query()).iceServers).toHaveLength(2);
  });

  it('every device rings, the first to answer wins, the others hear it; ICE goes to the one peer', async () => {
    const [alice, bob] = [await registerUser(t), await registerUser(t)];
    const [aliceTablet, bobLaptop] = [await secondDevice(alice), await secondDevice(bob)];
    const [alicePhoneId, bobPhoneId, bobLaptopId] = [
      await deviceOf(alice.accessToken),
      await deviceOf(bob.accessToken),
      await deviceOf(bobLaptop),
    ];
    const streams = {
      alice: await openStream(t, alice.accessToken),
      aliceTablet: await openStream(t, aliceTablet),
      bobPhone: await openStream(t, bob.accessToken),
      bobLaptop: await openStream(t, bobLaptop),
    };

    const started = await call(alice, bob, [bobPhoneId, bobLaptopId]);
    expect(started).toMatchObject({ state: 'ringing', direction: 'outgoing', media: 'video' });
    const phoneInvite = (await streams.bobPhone.next('call.invite')).event;
    expect(phoneInvite).toMatchObject({
      call: { id: started.id, direction: 'incoming' },
      callerDeviceId: alicePhoneId,
      offer: b64(`offer for ${bobPhoneId}`),
    });
    expect((await streams.bobLaptop.next('call.invite')).event.offer).toBe(
      b64(`offer for ${bobLaptopId}`),
    );
    expect((await streams.aliceTablet.next('call.invite')).event.offer).toBeNull();

    const accepted = await api(bob.accessToken).calls.accept.mutate({
      callId: started.id,
      answer: b64('answer'),
    });
    expect(accepted.state).toBe('accepted');
    // The answer is built from what the update wrote, not read back: it must match the row.
    expect(accepted).toEqual(await api(bob.accessToken).calls.get.query({ id: started.id }));
    expect(
      await codeOf(api(bobLaptop).calls.accept.mutate({ callId: started.id, answer: b64('late') })),
    ).toBe('CONFLICT');
    expect((await streams.alice.next('call.accepted')).event).toMatchObject({
      callId: started.id,
      deviceId: bobPhoneId,
      answer: b64('answer'),
    });
    expect((await streams.bobLaptop.next('call.answered_elsewhere')).event.deviceId).toBe(
      bobPhoneId,
    );

    await api(alice.accessToken).calls.signal.mutate({
      callId: started.id,
      kind: 'candidates',
      ciphertext: b64('candidate 1'),
    });
    expect((await streams.bobPhone.next('call.signal')).event).toMatchObject({
      fromDeviceId: alicePhoneId,
      ciphertext: b64('candidate 1'),
    });
    // The laptop is not in the call: it never gets the candidates; nor may it signal.
    expect(
      await codeOf(
        api(bobLaptop).calls.signal.mutate({
          callId: started.id,
          kind: 'candidates',
          ciphertext: b64('x'),
        }),
      ),
    ).toBe('NOT_FOUND');
    await api(bob.accessToken).calls.heartbeat.mutate({ callId: started.id });

    const ended = await api(bob.accessToken).calls.hangup.mutate({ callId: started.id });
    expect(ended).toMatchObject({ state: 'ended', endReason: 'user_hangup' });
    // Bob's answer is his view of the call, the same as reading it back.
    const afterFirst = await api(bob.accessToken).calls.get.query({ id: started.id });
    expect(ended).toEqual(afterFirst);
    for (const stream of [streams.alice, streams.bobLaptop])
      expect((await stream.next('call.ended')).event.call.state).toBe('ended');
    // A second hangup, seconds later and with a reason that would end it as `failed`, is refused
    // and rewrites nothing: not the state, not the reason, not the time it ended.
    offsetMs = 5_000;
    try {
      expect(
        await codeOf(
          api(alice.accessToken).calls.hangup.mutate({ callId: started.id, reason: 'ice_failed' }),
        ),
      ).toBe('CONFLICT');
    } finally {
      offsetMs = 0;
    }
    expect(await api(bob.accessToken).calls.get.query({ id: started.id })).toEqual(afterFirst);
    expect(
      await codeOf(
        api(alice.accessToken).calls.signal.mutate({
          callId: started.id,
          kind: 'candidates',
          ciphertext: b64('too late'),
        }),
      ),
    ).toBe('CONFLICT');
    expect(streams.bobLaptop.events.size).toBe(0);

    const history = await api(bob.accessToken).calls.history.query({});
    expect(history.calls[0]).toMatchObject({
      id: started.id,
      direction: 'incoming',
      media: 'video',
      state: 'ended',
    });
    const rest = await fetch(`${t.server.url}/api/v1/calls/${started.id}`, {
      headers: { authorization: `Bearer ${alice.accessToken}` },
    });
    expect(((await rest.json()) as { direction: string }).direction).toBe('outgoing');
    for (const s of Object.values(streams)) await s.close();
  });

  it('declined everywhere; cancelled is missed; accept after cancel changes nothing', async () => {
    const [alice, bob] = [await registerUser(t), await registerUser(t)];
    const bobPhone = await deviceOf(bob.accessToken);
    const first = await call(alice, bob, [bobPhone]);
    expect(await api(bob.accessToken).calls.reject.mutate({ callId: first.id })).toMatchObject({
      state: 'rejected',
      endReason: 'user_declined',
    });
    const second = await call(alice, bob, [bobPhone]);
    expect((await api(alice.accessToken).calls.cancel.mutate({ callId: second.id })).state).toBe(
      'missed',
    );
    expect(
      await codeOf(
        api(bob.accessToken).calls.accept.mutate({ callId: second.id, answer: b64('a') }),
      ),
    ).toBe('CONFLICT');
    expect((await api(bob.accessToken).calls.get.query({ id: second.id })).state).toBe('missed');
  });

  it('a cancel that crosses the answer hangs the answered call up: nobody is left connecting', async () => {
    const [alice, bob] = [await registerUser(t), await registerUser(t)];
    const bobStream = await openStream(t, bob.accessToken);
    const crossed = await call(alice, bob, [await deviceOf(bob.accessToken)]);
    // Bob's answer lands first; Alice's cancel was sent before she heard of it.
    await api(bob.accessToken).calls.accept.mutate({ callId: crossed.id, answer: b64('a') });
    const cancelled = await api(alice.accessToken).calls.cancel.mutate({ callId: crossed.id });
    expect(cancelled).toMatchObject({ state: 'ended', endReason: 'user_hangup' });
    await endsByHangup(bobStream, crossed.id);
    // A decline or a hangup from a device not in the answered call (Bob's laptop rang too) is
    // refused, and the call goes on.
    const bobLaptop = await secondDevice(bob);
    const again = await call(alice, bob, [
      await deviceOf(bob.accessToken),
      await deviceOf(bobLaptop),
    ]);
    await api(bob.accessToken).calls.accept.mutate({ callId: again.id, answer: b64('a') });
    expect(await codeOf(api(bobLaptop).calls.reject.mutate({ callId: again.id }))).toBe('CONFLICT');
    expect(await codeOf(api(bobLaptop).calls.hangup.mutate({ callId: again.id }))).toBe('CONFLICT');
    expect((await api(alice.accessToken).calls.get.query({ id: again.id })).state).toBe('accepted');
    await bobStream.close();
  });

  it('a decline that crosses my own answer hangs the answered call up: the caller is not left connecting', async () => {
    const [alice, bob] = [await registerUser(t), await registerUser(t)];
    const aliceStream = await openStream(t, alice.accessToken);
    const crossed = await call(alice, bob, [await deviceOf(bob.accessToken)]);
    // Bob's answer lands first; his hangup, sent while it was on its way, was read as the
    // decline of a ringing call (as `hangup` does when it reads the call before the answer).
    await api(bob.accessToken).calls.accept.mutate({ callId: crossed.id, answer: b64('a') });
    const declined = await api(bob.accessToken).calls.reject.mutate({ callId: crossed.id });
    expect(declined).toMatchObject({ state: 'ended', endReason: 'user_hangup' });
    await endsByHangup(aliceStream, crossed.id);
    await aliceStream.close();
  });

  it("hangup takes only reasons a participant can know: the server's findings are refused", async () => {
    const [alice, bob, carol, dave] = [
      await registerUser(t),
      await registerUser(t),
      await registerUser(t),
      await registerUser(t),
    ];
    const live = await call(alice, bob, [await deviceOf(bob.accessToken)]);
    await api(bob.accessToken).calls.accept.mutate({ callId: live.id, answer: b64('a') });
    const ringing = await call(carol, dave, [await deviceOf(dave.accessToken)]);
    const before = {
      live: await api(bob.accessToken).calls.get.query({ id: live.id }),
      ringing: await api(dave.accessToken).calls.get.query({ id: ringing.id }),
    };
    // A decline, busy, glare or ring timeout said by a client would be a false entry in both
    // histories; each is refused whoever says it, on an answered or a ringing call.
    const attempts = [
      [alice, live.id],
      [bob, live.id],
      [carol, ringing.id],
      [dave, ringing.id],
    ] as const;
    for (const reason of ['glare', 'user_busy', 'invite_timeout', 'user_declined'])
      for (const [who, callId] of attempts)
        expect(
          await codeOf(
            api(who.accessToken).calls.hangup.mutate({ callId, reason: reason as 'user_hangup' }),
          ),
          `${reason} on ${callId === live.id ? 'an answered' : 'a ringing'} call`,
        ).toBe('BAD_REQUEST');
    expect(await api(bob.accessToken).calls.get.query({ id: live.id })).toEqual(before.live);
    expect(await api(dave.accessToken).calls.get.query({ id: ringing.id })).toEqual(before.ringing);
    await api(bob.accessToken).calls.hangup.mutate({ callId: live.id });
    await api(carol.accessToken).calls.cancel.mutate({ callId: ringing.id });
  });

  it('history: newest first in pages, with direction, outcome and talk time; also over REST', async () => {
    const [alice, bob] = [await registerUser(t), await registerUser(t)];
    const [alicePhone, bobPhone] = [
      await deviceOf(alice.accessToken),
      await deviceOf(bob.accessToken),
    ];
    // Answered at 0 s, hung up at 42 s by the server's clock (held still, so the requests'
    // own time does not count): 42 s of talk.
    const talked = await call(alice, bob, [bobPhone]);
    try {
      frozenAt = Date.now();
      await api(bob.accessToken).calls.accept.mutate({ callId: talked.id, answer: b64('a') });
      offsetMs = 42_000;
      await api(alice.accessToken).calls.hangup.mutate({ callId: talked.id });
    } finally {
      offsetMs = 0;
      frozenAt = null;
    }
    const missed = await call(alice, bob, [bobPhone]);
    await api(alice.accessToken).calls.cancel.mutate({ callId: missed.id });
    const declined = await call(bob, alice, [alicePhone]);
    await api(alice.accessToken).calls.reject.mutate({ callId: declined.id });

    const history = (input: { before?: string; limit?: number }) =>
      api(alice.accessToken).calls.history.query(input);
    const first = await history({ limit: 2 });
    expect(first.more).toBe(true);
    expect(first.calls).toMatchObject([
      { id: declined.id, direction: 'incoming', state: 'rejected', durationSeconds: 0 },
      { id: missed.id, direction: 'outgoing', state: 'missed', durationSeconds: 0 },
    ]);
    const second = await history({ limit: 2, before: first.calls[1]!.id });
    expect(second.more).toBe(false);
    expect(second.calls).toMatchObject([
      { id: talked.id, direction: 'outgoing', state: 'ended', durationSeconds: 42 },
    ]);
    const { acceptedAt, endedAt } = second.calls[0]!;
    expect(Date.parse(endedAt!) - Date.parse(acceptedAt!)).toBe(42_000);
    // The same page boundary exactly: nothing after the last call, and a full page says no more.
    expect(await history({ before: talked.id })).toEqual({ calls: [], more: false });
    expect((await history({ limit: 3 })).more).toBe(false);
    expect((await api(bob.accessToken).calls.history.query({})).calls[0]).toMatchObject({
      id: declined.id,
      direction: 'outgoing',
    });

    const rest = async (query: string) => {
      const res = await fetch(`${t.server.url}/api/v1/calls${query}`, {
        headers: { authorization: `Bearer ${alice.accessToken}` },
      });
      expect(res.status).toBe(200);
      return (await res.json()) as typeof first;
    };
    expect(await rest('?limit=2')).toEqual(first);
    expect(await rest(`?limit=2&before=${first.calls[1]!.id}`)).toEqual(second);
    expect((await rest('')).calls.map((c) => c.id)).toEqual([declined.id, missed.id, talked.id]);
    expect((await fetch(`${t.server.url}/api/v1/calls`)).status).toBe(401);
  });

  it('the caller names the call; a taken, malformed or far-off id is refused, nothing written', async () => {
    const [alice, bob, carol] = [
      await registerUser(t),
      await registerUser(t),
      await registerUser(t),
    ];
    const bobPhone = await deviceOf(bob.accessToken);
    const carolPhone = await deviceOf(carol.accessToken);
    const start = (callId: string, to: Account, deviceId: string) =>
      api(alice.accessToken).calls.start.mutate({
        callId,
        calleeId: to.userId,
        media: 'audio',
        offers: [{ deviceId, ciphertext: b64('offer') }],
      });
    const callId = uuidv7();
    expect((await start(callId, bob, bobPhone)).id).toBe(callId);
    await api(alice.accessToken).calls.cancel.mutate({ callId });

    const carolStream = await openStream(t, carol.accessToken);
    const minutes = (n: number) => Date.now() + n * 60_000;
    const v7At = (ms: number) => {
      const hex = ms.toString(16).padStart(12, '0');
      return `${hex.slice(0, 8)}-${hex.slice(8)}${uuidv7().slice(13)}`;
    };
    // Taken (even once the call is over, and when the callee differs): CONFLICT.
    expect(await codeOf(start(callId, carol, carolPhone))).toBe('CONFLICT');
    // Also while Bob is calling Alice: the glare it would settle is rolled back with it.
    const alicePhone = await deviceOf(alice.accessToken);
    const bobsCall = await api(bob.accessToken).calls.start.mutate({
      callId: uuidv7(),
      calleeId: alice.userId,
      media: 'audio',
      offers: [{ deviceId: alicePhone, ciphertext: b64('offer') }],
    });
    expect(await codeOf(start(callId, bob, bobPhone))).toBe('CONFLICT');
    expect((await api(bob.accessToken).calls.get.query({ id: bobsCall.id })).state).toBe('ringing');
    await api(bob.accessToken).calls.cancel.mutate({ callId: bobsCall.id });
    // Not a UUIDv7, not a UUID, or from a clock 11 minutes off either way: BAD_REQUEST.
    expect(await codeOf(start(crypto.randomUUID(), carol, carolPhone))).toBe('BAD_REQUEST');
    expect(await codeOf(start('call-1', carol, carolPhone))).toBe('BAD_REQUEST');
    expect(await codeOf(start(v7At(minutes(11)), carol, carolPhone))).toBe('BAD_REQUEST');
    expect(await codeOf(start(v7At(minutes(-11)), carol, carolPhone))).toBe('BAD_REQUEST');
    // Nothing rang and nothing is in anyone's history but the one call.
    expect((await api(carol.accessToken).calls.history.query({})).calls).toEqual([]);
    expect((await api(alice.accessToken).calls.history.query({})).calls.map((c) => c.id)).toEqual([
      bobsCall.id,
      callId,
    ]);
    const accepted = await start(v7At(minutes(9)), carol, carolPhone); // within the 10 minutes
    expect((await carolStream.next('call.invite')).event).toMatchObject({
      call: { id: accepted.id },
    });
    await carolStream.close();
  });

  it('glare and busy hold when the starts arrive at the same moment', async () => {
    const [alice, bob, carol, dave] = [
      await registerUser(t),
      await registerUser(t),
      await registerUser(t),
      await registerUser(t),
    ];
    const [alicePhone, bobPhone] = [
      await deviceOf(alice.accessToken),
      await deviceOf(bob.accessToken),
    ];
    const stateOf = async (id: string) => await api(alice.accessToken).calls.get.query({ id });

    const [aToB, bToA] = await Promise.all([
      call(alice, bob, [bobPhone]),
      call(bob, alice, [alicePhone]),
    ]);
    const [winner, loser] = alice.userId < bob.userId ? [aToB, bToA] : [bToA, aToB];
    expect(await stateOf(winner.id)).toMatchObject({ state: 'ringing', endReason: null });
    expect(await stateOf(loser.id)).toMatchObject({ state: 'ended', endReason: 'glare' });
    await api(alice.accessToken).calls.hangup.mutate({ callId: winner.id });

    const [fromCarol, fromDave] = await Promise.all([
      call(carol, bob, [bobPhone]),
      call(dave, bob, [bobPhone]),
    ]);
    expect([fromCarol.state, fromDave.state].sort()).toEqual(['busy', 'ringing']);
    const bobs = (await api(bob.accessToken).calls.history.query({})).calls;
    expect(bobs.filter((c) => c.state === 'ringing')).toHaveLength(1);
  });

  it('busy, glare, blocks, outsiders, oversize payloads and candidate floods', async () => {
    const [alice, bob, carol, eve] = [
      await registerUser(t),
      await registerUser(t),
      await registerUser(t),
      await registerUser(t),
    ];
    const [bobPhone, carolPhone, alicePhone] = [
      await deviceOf(bob.accessToken),
      await deviceOf(carol.accessToken),
      await deviceOf(alice.accessToken),
    ];
    const live = await call(carol, bob, [bobPhone]);
    await api(bob.accessToken).calls.accept.mutate({ callId: live.id, answer: b64('a') });
    expect((await call(alice, bob, [bobPhone])).state).toBe('busy');

    // Outsiders see nothing; floods are cut off.
    expect(await codeOf(api(eve.accessToken).calls.get.query({ id: live.id }))).toBe('NOT_FOUND');
    expect(
      await codeOf(
        api(eve.accessToken).calls.signal.mutate({
          callId: live.id,
          kind: 'candidates',
          ciphertext: b64('x'),
        }),
      ),
    ).toBe('NOT_FOUND');
    expect(
      await codeOf(
        api(carol.accessToken).calls.signal.mutate({
          callId: live.id,
          kind: 'renegotiate',
          ciphertext: Buffer.alloc(4096).toString('base64'),
        }),
      ),
    ).toBe('PAYLOAD_TOO_LARGE');
    const flood = [];
    for (let i = 0; i < 25; i++)
      flood.push(
        await codeOf(
          api(carol.accessToken).calls.signal.mutate({
            callId: live.id,
            kind: 'candidates',
            ciphertext: b64(`c${i}`),
          }),
        ),
      );
    expect(flood).toContain('TOO_MANY_REQUESTS');
    await api(carol.accessToken).calls.hangup.mutate({ callId: live.id });

    // Glare: both call at once; the smaller user id's call goes on, on both sides alike.
    const aToB = await call(alice, bob, [bobPhone]);
    const bToA = await api(bob.accessToken).calls.start.mutate({
      callId: uuidv7(),
      calleeId: alice.userId,
      media: 'audio',
      offers: [{ deviceId: alicePhone, ciphertext: b64('o') }],
    });
    const aliceWins = alice.userId < bob.userId;
    const [winner, loser] = aliceWins ? [aToB.id, bToA.id] : [bToA.id, aToB.id];
    const seenByAlice = await api(alice.accessToken).calls.get.query({ id: loser });
    const seenByBob = await api(bob.accessToken).calls.get.query({ id: loser });
    expect([seenByAlice.endReason, seenByBob.endReason]).toEqual(['glare', 'glare']);
    expect((await api(alice.accessToken).calls.get.query({ id: winner })).state).toBe('ringing');
    await api(alice.accessToken).calls.hangup.mutate({ callId: winner });

    await api(bob.accessToken).blocks.add.mutate({ userId: alice.userId });
    expect(await codeOf(call(alice, bob, [bobPhone]))).toBe('FORBIDDEN');
    expect(await codeOf(call(alice, carol, [bobPhone]))).toBe('NOT_FOUND'); // not carol's device
    await expect(
      api(alice.accessToken).calls.start.mutate({
        callId: uuidv7(),
        calleeId: '0190d4a2-0000-7000-8000-000000000000',
        media: 'audio',
        offers: [{ deviceId: bobPhone, ciphertext: b64('o') }],
      }),
    ).rejects.toThrow('No such user');
    expect(
      await codeOf(
        api(alice.accessToken).calls.start.mutate({
          callId: uuidv7(),
          calleeId: carol.userId,
          media: 'audio',
          offers: [{ deviceId: carolPhone, ciphertext: Buffer.alloc(4096).toString('base64') }],
        }),
      ),
    ).toBe('PAYLOAD_TOO_LARGE');
  });

  /** Four new people: Alice's call to Bob rings, Carol's to Dave is answered. */
  const ringingAndAnswered = async () => {
    const [alice, bob, carol, dave] = [
      await registerUser(t),
      await registerUser(t),
      await registerUser(t),
      await registerUser(t),
    ];
    const ringing = await call(alice, bob, [await deviceOf(bob.accessToken)]);
    const answered = await call(carol, dave, [await deviceOf(dave.accessToken)]);
    await api(dave.accessToken).calls.accept.mutate({ callId: answered.id, answer: b64('a') });
    return { alice, bob, carol, dave, ringing, answered };
  };

  it('nobody answers: missed after the ring timeout; silent calls end when heartbeats stop', async () => {
    const { alice, dave, ringing: unanswered, answered } = await ringingAndAnswered();
    const aliceStream = await openStream(t, alice.accessToken);
    const daveStream = await openStream(t, dave.accessToken);

    offsetMs = 2 * 60_000; // past the 60 s ring timeout and the 75 s heartbeat timeout
    try {
      expect(await runCallTimeoutsOnce(t.server.infra.ports, t.server.settings)).toBeGreaterThan(0);
    } finally {
      offsetMs = 0;
    }
    expect(await api(alice.accessToken).calls.get.query({ id: unanswered.id })).toMatchObject({
      state: 'missed',
      endReason: 'invite_timeout',
    });
    expect(await api(dave.accessToken).calls.get.query({ id: answered.id })).toMatchObject({
      state: 'ended',
      endReason: 'ice_timeout',
    });
    expect((await aliceStream.next('call.ended')).event.call.id).toBe(unanswered.id);
    expect((await daveStream.next('call.ended')).event.call).toMatchObject({
      id: answered.id,
      direction: 'incoming',
    });
    await aliceStream.close();
    await daveStream.close();
  });

  it('past the ring timeout a call cannot be answered, even before the timeout job has run', async () => {
    const [alice, bob] = [await registerUser(t), await registerUser(t)];
    const late = await call(alice, bob, [await deviceOf(bob.accessToken)]);
    offsetMs = 61_000; // just past the 60 s ring timeout
    try {
      expect(
        await codeOf(
          api(bob.accessToken).calls.accept.mutate({ callId: late.id, answer: b64('a') }),
        ),
      ).toBe('CONFLICT');
    } finally {
      offsetMs = 0;
    }
    // Still ringing until the job gets to it (or missed, if it did meanwhile): never accepted.
    const { state } = await api(alice.accessToken).calls.get.query({ id: late.id });
    expect(['ringing', 'missed']).toContain(state);
  });

  it('an account deleted mid-call ends its calls: the other side stops ringing or talking', async () => {
    const { alice, bob, carol, dave, ringing, answered: talking } = await ringingAndAnswered();
    const bobStream = await openStream(t, bob.accessToken);
    const carolStream = await openStream(t, carol.accessToken);
    await api(alice.accessToken).me.delete.mutate({ password: PASSWORD });
    await api(dave.accessToken).me.delete.mutate({ password: PASSWORD });
    await endsByHangup(bobStream, ringing.id);
    await endsByHangup(carolStream, talking.id);
    await bobStream.close();
    await carolStream.close();
  });

  it('a device signed out or revoked ends the calls it is in; a call ringing it among my devices rings on', async () => {
    const [alice, bob, carol] = [
      await registerUser(t),
      await registerUser(t),
      await registerUser(t),
    ];
    const bobLaptop = await secondDevice(bob);
    const bobPhone = await deviceOf(bob.accessToken);
    const ringing = await call(alice, bob, [bobPhone, await deviceOf(bobLaptop)]);
    const bobStream = await openStream(t, bob.accessToken);
    // The laptop is signed out from the phone: the phone can still answer.
    await api(bob.accessToken).sessions.revokeOthers.mutate();
    expect(await api(alice.accessToken).calls.get.query({ id: ringing.id })).toMatchObject({
      state: 'ringing',
    });
    // The caller's page closes (it signs out): the call stops ringing, as if cancelled.
    await api(alice.accessToken).auth.logout.mutate();
    await endsByHangup(bobStream, ringing.id, 'missed');

    const talking = await call(carol, bob, [bobPhone]);
    await api(bob.accessToken).calls.accept.mutate({ callId: talking.id, answer: b64('a') });
    const carolStream = await openStream(t, carol.accessToken);
    await api(bob.accessToken).auth.logout.mutate();
    await endsByHangup(carolStream, talking.id);
    await bobStream.close();
    await carolStream.close();
  });

  it('a callee in a call with someone else is busy, also when they are calling me (glare)', async () => {
    const [alice, bob, carol] = [
      await registerUser(t),
      await registerUser(t),
      await registerUser(t),
    ];
    const [alicePhone, bobPhone] = [
      await deviceOf(alice.accessToken),
      await deviceOf(bob.accessToken),
    ];
    const withCarol = await call(carol, bob, [bobPhone]);
    await api(bob.accessToken).calls.accept.mutate({ callId: withCarol.id, answer: b64('a') });
    // Bob, still talking to Carol, rings Alice; Alice calls Bob back at that moment.
    const bobsCall = await call(bob, alice, [alicePhone]);
    const alicesCall = await call(alice, bob, [bobPhone]);
    // Whichever user id is smaller: Alice's call is busy, and Bob's rings on for her to take.
    expect(alicesCall).toMatchObject({ state: 'busy', endReason: 'user_busy' });
    expect((await api(alice.accessToken).calls.get.query({ id: bobsCall.id })).state).toBe(
      'ringing',
    );
    for (const id of [bobsCall.id, withCarol.id])
      await api(bob.accessToken).calls.hangup.mutate({ callId: id });
  });

  it('each side beats for itself: a call ends when either side goes quiet, not while both beat', async () => {
    const pairs = [];
    for (let i = 0; i < 3; i++) {
      const [caller, callee] = [await registerUser(t), await registerUser(t)];
      const placed = await call(caller, callee, [await deviceOf(callee.accessToken)]);
      await api(callee.accessToken).calls.accept.mutate({ callId: placed.id, answer: b64('a') });
      pairs.push({ caller, callee, id: placed.id });
    }
    const [callerOnly, calleeOnly, both] = pairs as [
      (typeof pairs)[0],
      (typeof pairs)[0],
      (typeof pairs)[0],
    ];
    const beat = (a: Account, callId: string) =>
      api(a.accessToken).calls.heartbeat.mutate({ callId });
    const stateOf = (a: Account, id: string) => api(a.accessToken).calls.get.query({ id });

    // Beats at 50 s and 100 s; the job runs at 100 s, past the 75 s timeout of a side that
    // stopped at 0 s (when the call was answered) but well within it for one that beat.
    try {
      for (const at of [50_000, 100_000]) {
        offsetMs = at;
        await beat(callerOnly.caller, callerOnly.id);
        await beat(calleeOnly.callee, calleeOnly.id);
        await beat(both.caller, both.id);
        await beat(both.callee, both.id);
      }
      await runCallTimeoutsOnce(t.server.infra.ports, t.server.settings);
    } finally {
      offsetMs = 0;
    }
    for (const quiet of [callerOnly, calleeOnly])
      expect(await stateOf(quiet.caller, quiet.id)).toMatchObject({
        state: 'ended',
        endReason: 'ice_timeout',
      });
    expect(await stateOf(both.caller, both.id)).toMatchObject({
      state: 'accepted',
      endReason: null,
    });
    await api(both.caller.accessToken).calls.hangup.mutate({ callId: both.id });
  });

  it('a heartbeat from a device not in the call is NOT_FOUND, writes nothing and keeps nothing alive', async () => {
    const [alice, bob, eve] = [await registerUser(t), await registerUser(t), await registerUser(t)];
    const [aliceTablet, bobLaptop] = [await secondDevice(alice), await secondDevice(bob)];
    const placed = await call(alice, bob, [
      await deviceOf(bob.accessToken),
      await deviceOf(bobLaptop),
    ]);
    await api(bob.accessToken).calls.accept.mutate({ callId: placed.id, answer: b64('a') });
    const beats = async () => {
      const row = await t.server.infra.ports.db
        .selectFrom('calls')
        .select(['state', 'caller_beat_at', 'callee_beat_at'])
        .where('id', '=', placed.id)
        .executeTakeFirstOrThrow();
      return {
        state: row.state,
        caller: Number(row.caller_beat_at),
        callee: Number(row.callee_beat_at),
      };
    };
    // Bob's laptop rang but did not answer, Alice's tablet did not place it, Eve is a stranger:
    // refused like a call that does not exist.
    const strangers = [bobLaptop, aliceTablet, eve.accessToken];
    const refusals = (callId: string) =>
      Promise.all(strangers.map((token) => codeOf(api(token).calls.heartbeat.mutate({ callId }))));
    expect(await refusals(uuidv7())).toEqual(['NOT_FOUND', 'NOT_FOUND', 'NOT_FOUND']);
    const answered = await beats();
    expect(answered.state).toBe('accepted');

    // Only Alice's phone beats, at 50 s and 100 s; the strangers beat each time too. The job at
    // 100 s finds Bob's side quiet since the answer (past the 75 s timeout) and ends the call.
    let last = answered;
    try {
      for (const at of [50_000, 100_000]) {
        offsetMs = at;
        expect(await refusals(placed.id)).toEqual(['NOT_FOUND', 'NOT_FOUND', 'NOT_FOUND']);
        expect(await beats()).toEqual(last);
        await api(alice.accessToken).calls.heartbeat.mutate({ callId: placed.id });
        const now = await beats();
        expect(now.caller).toBeGreaterThan(last.caller); // a beat that counts does show here
        expect(now.callee).toBe(answered.callee);
        last = now;
      }
      await runCallTimeoutsOnce(t.server.infra.ports, t.server.settings);
    } finally {
      offsetMs = 0;
    }
    expect(await api(alice.accessToken).calls.get.query({ id: placed.id })).toMatchObject({
      state: 'ended',
      endReason: 'ice_timeout',
    });
  });
});
