import { generateKeyPairSync, sign } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { errorCodeOf } from '@mvp/sdk';
import { defaultConfig } from '../src/index';
import {
  clientWithToken,
  currentDeviceId,
  registerUser,
  signInOnAnotherDevice,
  type Account,
} from './helpers/accounts';
import { backendLabel } from './helpers/env';
import { startServer, type TestServer } from './helpers/startServer';
import { openStream } from './helpers/sync';
import { codeOf } from './helpers/errors';

/** Raw 32-byte public key of a Node key pair, base64 (what clients publish). */
const rawPublic = (key: ReturnType<typeof generateKeyPairSync>['publicKey']) =>
  Buffer.from(key.export({ format: 'jwk' }).x!, 'base64url').toString('base64');

/**
 * A device's key material as a client would make it. The server only ever sees public halves;
 * Node's crypto stands in for @mvp/crypto here (same curves, same raw encodings).
 */
function deviceKeys(prekeys = 0, firstId = 1) {
  const identity = generateKeyPairSync('x25519');
  const signing = generateKeyPairSync('ed25519');
  const signedPrekey = generateKeyPairSync('x25519');
  const spkPublic = rawPublic(signedPrekey.publicKey);
  return {
    signingPrivate: signing.privateKey,
    input: {
      identityKey: rawPublic(identity.publicKey),
      signingKey: rawPublic(signing.publicKey),
      signedPrekey: {
        keyId: 1,
        publicKey: spkPublic,
        signature: sign(null, Buffer.from(spkPublic, 'base64'), signing.privateKey).toString(
          'base64',
        ),
      },
      oneTimePrekeys: oneTimePrekeys(prekeys, firstId),
    },
  };
}

function oneTimePrekeys(n: number, firstId = 1) {
  return Array.from({ length: n }, (_, i) => ({
    keyId: firstId + i,
    publicKey: rawPublic(generateKeyPairSync('x25519').publicKey),
  }));
}

describe(`the device key directory (${backendLabel})`, () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startServer({
      keys: {
        ...defaultConfig().keys,
        prekeyCap: 150,
        lowThreshold: 3,
        // The parallel-claims test below claims one user's keys 20 times from one account.
        claimPairLimit: { points: 1000, durationSeconds: 60 },
      },
    });
  });
  afterAll(() => t.stop());

  const api = (token: string) => clientWithToken(t, token).api;
  const deviceIdOf = (token: string) => currentDeviceId(t, token);
  const login = (a: Account) => signInOnAnotherDevice(t, a, 'Another');

  it('publishes checked keys, lists live devices, and refuses bad input', async () => {
    const alice = await registerUser(t);
    const keys = deviceKeys(5);
    const bad = deviceKeys();
    expect(
      await codeOf(
        api(alice.accessToken).keys.publish.mutate({
          ...keys.input,
          signedPrekey: { ...keys.input.signedPrekey, signature: bad.input.signedPrekey.signature },
        }),
      ),
    ).toBe('BAD_REQUEST');
    expect(
      await codeOf(
        api(alice.accessToken).keys.publish.mutate({ ...keys.input, identityKey: 'short' }),
      ),
    ).toBe('BAD_REQUEST');
    expect(
      await codeOf(
        api(alice.accessToken).keys.publish.mutate({
          ...keys.input,
          oneTimePrekeys: oneTimePrekeys(101),
        }),
      ),
    ).toBe('BAD_REQUEST');
    // Low-order points (all zeros; one): every Diffie-Hellman with them is zero, X3DH fails.
    const zero = Buffer.alloc(32).toString('base64');
    const one = Buffer.from([1, ...Array<number>(31).fill(0)]).toString('base64');
    const lowOrderSigned = (publicKey: string) => ({
      keyId: 1,
      publicKey,
      signature: sign(null, Buffer.from(publicKey, 'base64'), keys.signingPrivate).toString(
        'base64',
      ),
    });
    for (const input of [
      { ...keys.input, identityKey: zero },
      { ...keys.input, signedPrekey: lowOrderSigned(one) },
      { ...keys.input, oneTimePrekeys: [...oneTimePrekeys(2), { keyId: 9, publicKey: zero }] },
    ]) {
      expect(await codeOf(api(alice.accessToken).keys.publish.mutate(input))).toBe('BAD_REQUEST');
    }
    expect(await codeOf(api(alice.accessToken).keys.count.query())).toBe('CONFLICT');

    expect(await api(alice.accessToken).keys.publish.mutate(keys.input)).toEqual({
      oneTimePrekeys: 5,
      signedPrekeyId: 1,
      threshold: 3,
    });
    const bob = await registerUser(t);
    const listed = await api(bob.accessToken).keys.devices.query({ userId: alice.userId });
    expect(listed.devices).toEqual([
      {
        deviceId: await deviceIdOf(alice.accessToken),
        identityKey: keys.input.identityKey,
        signingKey: keys.input.signingKey,
      },
    ]);
    // A signed-out device leaves the directory at once.
    await api(alice.accessToken).auth.logout.mutate();
    expect(
      (await api(bob.accessToken).keys.devices.query({ userId: alice.userId })).devices,
    ).toEqual([]);
    expect(
      await codeOf(
        api(bob.accessToken).keys.devices.query({ userId: '0190d4a2-0000-7000-8000-000000000000' }),
      ),
    ).toBe('NOT_FOUND');
  });

  it('N parallel claims against K keys hand out exactly min(N, K) distinct keys, then last resort', async () => {
    const [alice, bob] = [await registerUser(t), await registerUser(t)];
    const K = 12;
    const N = 20;
    await api(alice.accessToken).keys.publish.mutate(deviceKeys(K).input);
    const claims = await Promise.all(
      Array.from({ length: N }, () =>
        api(bob.accessToken).keys.claim.mutate({ userId: alice.userId }),
      ),
    );
    const keys = claims.map((c) => c.devices[0]!.oneTimePrekey);
    const given = keys.filter((k) => k !== null).map((k) => k.keyId);
    expect(given).toHaveLength(Math.min(N, K));
    expect(new Set(given).size).toBe(given.length);
    // The rest get the signed prekey alone.
    expect(keys.filter((k) => k === null)).toHaveLength(N - K);
    expect(claims.every((c) => c.devices[0]!.signedPrekey.keyId === 1)).toBe(true);
    expect((await api(alice.accessToken).keys.count.query()).oneTimePrekeys).toBe(0);
  });

  it('a device running low is told once on its stream, and tops up', async () => {
    const [alice, bob] = [await registerUser(t), await registerUser(t)];
    await api(alice.accessToken).keys.publish.mutate(deviceKeys(4).input);
    const stream = await openStream(t, alice.accessToken);
    await api(bob.accessToken).keys.claim.mutate({ userId: alice.userId }); // 3 left
    await api(bob.accessToken).keys.claim.mutate({ userId: alice.userId }); // 2 left: low
    await api(bob.accessToken).keys.claim.mutate({ userId: alice.userId }); // 1 left: told already
    expect((await stream.next('keys.low')).event.remaining).toBe(2);
    const topped = await api(alice.accessToken).keys.upload.mutate({
      oneTimePrekeys: oneTimePrekeys(10, 100),
    });
    expect(topped.oneTimePrekeys).toBe(11);
    expect(
      await codeOf(
        api(alice.accessToken).keys.upload.mutate({ oneTimePrekeys: oneTimePrekeys(1, 100) }),
      ),
    ).toBe('BAD_REQUEST'); // id already in use
    expect(
      await codeOf(
        api(alice.accessToken).keys.upload.mutate({ oneTimePrekeys: oneTimePrekeys(100, 200) }),
      ),
    ).toBe('ok'); // 111 held, cap 150
    expect(
      await codeOf(
        api(alice.accessToken).keys.upload.mutate({ oneTimePrekeys: oneTimePrekeys(50, 400) }),
      ),
    ).toBe('BAD_REQUEST'); // over the cap
    expect(stream.events.size).toBe(0);
    await stream.close();
  });

  it('parallel uploads of one device stop at the prekey cap, the rest refused as BAD_REQUEST', async () => {
    const alice = await registerUser(t);
    await api(alice.accessToken).keys.publish.mutate(deviceKeys(0).input);
    // 20 uploads of 10 against a cap of 150: 15 fit, whichever they are.
    const outcomes = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        codeOf(
          api(alice.accessToken).keys.upload.mutate({
            oneTimePrekeys: oneTimePrekeys(10, 1 + i * 10),
          }),
        ),
      ),
    );
    expect(outcomes.filter((o) => o === 'ok')).toHaveLength(15);
    expect(outcomes.filter((o) => o === 'BAD_REQUEST')).toHaveLength(5);
    expect((await api(alice.accessToken).keys.count.query()).oneTimePrekeys).toBe(150);
  });

  it('two first publishes of one device at once both succeed, the second as an update', async () => {
    const alice = await registerUser(t);
    const keys = deviceKeys(5);
    const outcomes = await Promise.all([
      codeOf(api(alice.accessToken).keys.publish.mutate(keys.input)),
      codeOf(
        api(alice.accessToken).keys.publish.mutate({
          ...keys.input,
          oneTimePrekeys: oneTimePrekeys(5, 100),
        }),
      ),
    ]);
    expect(outcomes).toEqual(['ok', 'ok']);
    // The same identity both times: the second only added its prekeys.
    expect((await api(alice.accessToken).keys.count.query()).oneTimePrekeys).toBe(10);
  });

  it('a signed-out or revoked device is told to peers and to my other devices, so its keys rotate', async () => {
    const [alice, bob] = [await registerUser(t), await registerUser(t)];
    await api(alice.accessToken).contacts.request.mutate({ userId: bob.userId });
    await api(bob.accessToken).contacts.request.mutate({ userId: alice.userId });
    await api(alice.accessToken).keys.publish.mutate(deviceKeys(1).input);
    const laptop = await login(alice);
    const laptopKeys = deviceKeys(1);
    await api(laptop).keys.publish.mutate(laptopKeys.input);
    const laptopId = await deviceIdOf(laptop);
    const bobStream = await openStream(t, bob.accessToken);
    const aliceStream = await openStream(t, alice.accessToken);

    const laptopSession = (await api(alice.accessToken).sessions.list.query()).sessions.find(
      (x) => !x.current,
    )!;
    await api(alice.accessToken).sessions.revoke.mutate({ id: laptopSession.id });
    const told = {
      type: 'device.keys',
      userId: alice.userId,
      deviceId: laptopId,
      identityKey: laptopKeys.input.identityKey,
      change: 'removed',
      verificationLost: false,
    };
    expect((await bobStream.next('device.keys')).event).toEqual(told);
    expect((await aliceStream.next('device.keys')).event).toEqual(told);
    await bobStream.close();
    await aliceStream.close();
  });

  it('a changed identity key is a new device: peers are told, a verification no longer holds', async () => {
    const [alice, bob] = [await registerUser(t), await registerUser(t)];
    await api(alice.accessToken).contacts.request.mutate({ userId: bob.userId });
    await api(bob.accessToken).contacts.request.mutate({ userId: alice.userId });
    await api(alice.accessToken).keys.publish.mutate(deviceKeys(2).input);
    const verified = await api(bob.accessToken).keys.verify.mutate({
      userId: alice.userId,
      fingerprint: '12345 67890 12345 67890 12345 67890',
      method: 'qr',
    });
    expect(verified).toMatchObject({ verified: true, method: 'qr' });

    const bobStream = await openStream(t, bob.accessToken);
    const fresh = deviceKeys(1);
    expect((await api(alice.accessToken).keys.publish.mutate(fresh.input)).oneTimePrekeys).toBe(1);
    expect((await bobStream.next('device.keys')).event).toMatchObject({
      userId: alice.userId,
      identityKey: fresh.input.identityKey,
      change: 'changed',
      verificationLost: true,
    });
    expect(
      (await api(bob.accessToken).keys.verification.query({ userId: alice.userId }))?.verified,
    ).toBe(false);
    // Publishing the same keys again changes nothing and tells nobody.
    await api(alice.accessToken).keys.publish.mutate({ ...fresh.input, oneTimePrekeys: [] });
    expect(bobStream.events.size).toBe(0);
    expect(
      await codeOf(
        api(bob.accessToken).keys.verify.mutate({
          userId: bob.userId,
          fingerprint: '12345678',
          method: 'manual',
        }),
      ),
    ).toBe('BAD_REQUEST');
    await bobStream.close();
  });

  it('a claim naming devices takes one-time prekeys from those only', async () => {
    const [alice, bob] = [await registerUser(t), await registerUser(t)];
    const bobLaptop = await login(bob);
    await api(bob.accessToken).keys.publish.mutate(deviceKeys(5).input);
    await api(bobLaptop).keys.publish.mutate(deviceKeys(5).input);
    const [phone, laptop] = [await deviceIdOf(bob.accessToken), await deviceIdOf(bobLaptop)];
    // Alice has a session with the phone already; only the new laptop needs a one-time prekey.
    const bundle = await api(alice.accessToken).keys.claim.mutate({
      userId: bob.userId,
      deviceIds: [laptop],
    });
    const byDevice = new Map(bundle.devices.map((d) => [d.deviceId, d.oneTimePrekey]));
    expect(byDevice.get(phone)).toBeNull();
    expect(byDevice.get(laptop)).not.toBeNull();
    expect((await api(bob.accessToken).keys.count.query()).oneTimePrekeys).toBe(5);
    expect((await api(bobLaptop).keys.count.query()).oneTimePrekeys).toBe(4);
    expect(
      await codeOf(
        api(alice.accessToken).keys.claim.mutate({ userId: bob.userId, deviceIds: ['nope'] }),
      ),
    ).toBe('BAD_REQUEST');
  });

  it('claims the bundles of several users in one call, as claims one by one would', async () => {
    const [alice, bob, carol, dan] = [
      await registerUser(t),
      await registerUser(t),
      await registerUser(t),
      await registerUser(t),
    ];
    const bobLaptop = await login(bob);
    await api(bob.accessToken).keys.publish.mutate(deviceKeys(5).input);
    await api(bobLaptop).keys.publish.mutate(deviceKeys(5).input);
    await api(carol.accessToken).keys.publish.mutate(deviceKeys(5).input);
    const [phone, laptop] = [await deviceIdOf(bob.accessToken), await deviceIdOf(bobLaptop)];
    const unknown = '0190d4a2-0000-7000-8000-000000000000';
    const { users } = await api(alice.accessToken).keys.claimMany.mutate({
      users: [
        { userId: bob.userId, deviceIds: [laptop] },
        { userId: carol.userId },
        { userId: dan.userId }, // no keys published
        { userId: unknown }, // no such user: answered alike, nothing told
      ],
    });
    expect(users.map((u) => [u.userId, u.devices.map((d) => d.deviceId)])).toEqual([
      [bob.userId, [phone, laptop]],
      [carol.userId, [await deviceIdOf(carol.accessToken)]],
      [dan.userId, []],
      [unknown, []],
    ]);
    const bobs = new Map(users[0]!.devices.map((d) => [d.deviceId, d.oneTimePrekey]));
    expect(bobs.get(phone)).toBeNull();
    expect(bobs.get(laptop)).not.toBeNull();
    expect(users[1]!.devices[0]!.oneTimePrekey).not.toBeNull();
    expect((await api(bobLaptop).keys.count.query()).oneTimePrekeys).toBe(4);
    expect((await api(carol.accessToken).keys.count.query()).oneTimePrekeys).toBe(4);

    // The REST shim, for integrators: POST /api/v1/keys/claim, and 401 without a token.
    const rest = (token?: string) =>
      fetch(`${t.server.url}/api/v1/keys/claim`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          ...(token ? { authorization: `Bearer ${token}` } : {}),
        },
        body: JSON.stringify({ users: [{ userId: carol.userId }] }),
      });
    const viaRest = await rest(alice.accessToken);
    expect(viaRest.status).toBe(200);
    expect(((await viaRest.json()) as { users: { userId: string }[] }).users).toMatchObject([
      { userId: carol.userId, devices: [{ oneTimePrekey: { keyId: expect.any(Number) } }] },
    ]);
    expect((await rest()).status).toBe(401);
    expect((await api(carol.accessToken).keys.count.query()).oneTimePrekeys).toBe(3);

    // Bad input takes nothing: a user twice, too many users, a malformed id.
    const refused = async (input: unknown) =>
      codeOf(api(alice.accessToken).keys.claimMany.mutate(input as never));
    expect(await refused({ users: [{ userId: carol.userId }, { userId: carol.userId }] })).toBe(
      'BAD_REQUEST',
    );
    expect(
      await refused({ users: Array.from({ length: 101 }, () => ({ userId: carol.userId })) }),
    ).toBe('BAD_REQUEST');
    expect(await refused({ users: [{ userId: 'nope' }] })).toBe('BAD_REQUEST');
    expect(await refused({ users: [] })).toBe('BAD_REQUEST');
    expect((await api(carol.accessToken).keys.count.query()).oneTimePrekeys).toBe(3);
  });

  it('envelopes for all devices are refused with the missing and stale devices named', async () => {
    const [alice, bob] = [await registerUser(t), await registerUser(t)];
    const bobLaptop = await login(bob);
    await api(bob.accessToken).keys.publish.mutate(deviceKeys(1).input);
    await api(bobLaptop).keys.publish.mutate(deviceKeys(1).input);
    const [phone, laptop] = [await deviceIdOf(bob.accessToken), await deviceIdOf(bobLaptop)];
    const envelope = (deviceId: string) => ({
      userId: bob.userId,
      deviceId,
      contentType: 'mvp/sender-key',
      ciphertext: Buffer.from('key share').toString('base64'),
    });
    const sendAll = (...deviceIds: string[]) =>
      api(alice.accessToken).sync.sendToDevices.mutate({
        allDevices: true,
        envelopes: deviceIds.map(envelope),
      });

    const refused = await sendAll(phone).catch((e: unknown) => e);
    expect(errorCodeOf(refused)).toBe('DEVICES_CHANGED');
    expect((refused as { data?: { devices?: unknown } }).data?.devices).toEqual({
      missing: [{ userId: bob.userId, deviceId: laptop }],
      stale: [],
    });
    expect((await sendAll(phone, laptop)).ids).toHaveLength(2);

    await api(bobLaptop).auth.logout.mutate();
    const stale = await sendAll(phone, laptop).catch((e: unknown) => e);
    expect((stale as { data?: { devices?: unknown } }).data?.devices).toEqual({
      missing: [],
      stale: [{ userId: bob.userId, deviceId: laptop }],
    });
  });

  it("one account takes only a few of a user's one-time prekeys, and none across a block", async () => {
    const limited = await startServer({
      keys: { ...defaultConfig().keys, claimPairLimit: { points: 2, durationSeconds: 3600 } },
    });
    try {
      const api = (token: string) => clientWithToken(limited, token).api;
      const [alice, mallory, carol] = [
        await registerUser(limited),
        await registerUser(limited),
        await registerUser(limited),
      ];
      await api(alice.accessToken).keys.publish.mutate(deviceKeys(10).input);
      const claim = (by: Account) =>
        api(by.accessToken).keys.claim.mutate({ userId: alice.userId });
      const taken = async (by: Account) => (await claim(by)).devices[0]!.oneTimePrekey;
      expect(await taken(mallory)).not.toBeNull();
      expect(await taken(mallory)).not.toBeNull();
      // Past the budget the bundle still answers (a session can start), taking nothing.
      expect(await taken(mallory)).toBeNull();
      expect((await api(alice.accessToken).keys.count.query()).oneTimePrekeys).toBe(8);
      // Someone else has a budget of their own; someone Alice blocked takes none.
      expect(await taken(carol)).not.toBeNull();
      await api(alice.accessToken).blocks.add.mutate({ userId: carol.userId });
      const blocked = await claim(carol);
      expect(blocked.devices[0]!.oneTimePrekey).toBeNull();
      expect(blocked.devices[0]!.signedPrekey.keyId).toBe(1);
      expect((await api(alice.accessToken).keys.count.query()).oneTimePrekeys).toBe(7);
    } finally {
      await limited.stop();
    }
  });

  it("throwaway accounts together take only so many of a user's one-time prekeys", async () => {
    const limited = await startServer({
      keys: { ...defaultConfig().keys, claimUserLimit: { points: 3, durationSeconds: 3600 } },
    });
    try {
      const api = (token: string) => clientWithToken(limited, token).api;
      const alice = await registerUser(limited);
      await api(alice.accessToken).keys.publish.mutate(deviceKeys(10).input);
      const taken = [];
      for (let i = 0; i < 5; i++) {
        const stranger = await registerUser(limited); // each with a pair budget of its own
        const bundle = await api(stranger.accessToken).keys.claim.mutate({ userId: alice.userId });
        taken.push(bundle.devices[0]!.oneTimePrekey !== null);
      }
      expect(taken).toEqual([true, true, true, false, false]);
      expect((await api(alice.accessToken).keys.count.query()).oneTimePrekeys).toBe(7);
    } finally {
      await limited.stop();
    }
  });

  it('the default claim budget covers the first send to two full groups, then ends', async () => {
    // The shared server keeps the default budget (2 000 users per ten minutes). Unknown users
    // cost a point each like known ones, and answer no devices.
    const claimer = await registerUser(t);
    const hundred = (batch: number) =>
      Array.from({ length: 100 }, (_, i) => ({
        userId: `0190d4a2-${String(batch).padStart(4, '0')}-7000-8000-${String(i).padStart(12, '0')}`,
      }));
    const many = (batch: number) =>
      api(claimer.accessToken).keys.claimMany.mutate({ users: hundred(batch) });
    for (let batch = 0; batch < 20; batch++) expect((await many(batch)).users).toHaveLength(100);
    expect(await codeOf(many(20))).toBe('TOO_MANY_REQUESTS');
  });

  it('claims are rate limited per account', async () => {
    const limited = await startServer({
      keys: { ...defaultConfig().keys, claimLimit: { points: 2, durationSeconds: 60 } },
    });
    try {
      const [alice, bob] = [await registerUser(limited), await registerUser(limited)];
      const claim = () =>
        clientWithToken(limited, bob.accessToken).api.keys.claim.mutate({ userId: alice.userId });
      await claim();
      await claim();
      expect(await codeOf(claim())).toBe('TOO_MANY_REQUESTS');
      // A batch costs one point per user: a budget of 2 does not cover 3 users (and the refused
      // batch takes nothing); it covers 2, and then nothing more.
      const [carol, dan] = [await registerUser(limited), await registerUser(limited)];
      await clientWithToken(limited, alice.accessToken).api.keys.publish.mutate(
        deviceKeys(5).input,
      );
      const many = (by: Account, n: number) =>
        clientWithToken(limited, by.accessToken).api.keys.claimMany.mutate({
          users: [alice, bob, carol].slice(0, n).map((u) => ({ userId: u.userId })),
        });
      expect(await codeOf(many(carol, 3))).toBe('TOO_MANY_REQUESTS');
      expect(
        (await clientWithToken(limited, alice.accessToken).api.keys.count.query()).oneTimePrekeys,
      ).toBe(5);
      expect((await many(dan, 2)).users).toHaveLength(2);
      expect(await codeOf(many(dan, 1))).toBe('TOO_MANY_REQUESTS');
    } finally {
      await limited.stop();
    }
  });
});
