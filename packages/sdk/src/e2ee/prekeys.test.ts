// The signed prekey's schedule: replaced when due, the replaced one kept while it may be used.
import { describe, expect, it } from 'vitest';
import { createFakeNetwork, decode, type FakeDevice } from './fakeNetwork.testing';
import { createPrekeys, SIGNED_PREKEY_KEEP_MS, SIGNED_PREKEY_ROTATE_MS } from './prekeys';

/** Time passes for this device: every signed prekey it holds was made `ms` earlier. */
async function passes(d: FakeDevice, ms: number) {
  for (const id of await d.e2ee.store.signedPreKeyIds()) {
    const key = (await d.e2ee.store.getSignedPreKey(id))!;
    await d.e2ee.store.putSignedPreKey({ ...key, createdAt: key.createdAt - ms });
  }
}

const prekeysOf = (d: FakeDevice) =>
  createPrekeys({
    store: d.e2ee.store,
    transport: d.transport,
    me: async () => ({ userId: d.userId, deviceId: d.deviceId }),
    report: (error) => {
      throw error;
    },
  });

describe('signed prekey rotation', () => {
  it('replaces a key that is due, keeps the replaced one 30 days, and peers start sessions on the new one', async () => {
    const net = createFakeNetwork();
    const [a, b] = [await net.device('alice'), await net.device('bob')];
    const first = net.published.get(b.deviceId)!.signedPrekey.keyId;
    const prekeys = prekeysOf(b);

    await passes(b, SIGNED_PREKEY_ROTATE_MS - 60_000);
    await prekeys.topUp();
    expect(net.published.get(b.deviceId)!.signedPrekey.keyId).toBe(first); // not due yet

    await passes(b, 60_000);
    await prekeys.ensurePublished();
    const second = net.published.get(b.deviceId)!.signedPrekey.keyId;
    expect(second).not.toBe(first);
    expect((await b.e2ee.store.signedPreKeyIds()).sort()).toEqual([first, second].sort());

    // A session Alice starts now uses the new key, and Bob reads it.
    net.members('d', ['alice', 'bob']);
    const sent = await a.e2ee.send('d', { contentType: 'text/plain', body: new Uint8Array([104]) });
    await sent.result;
    await net.settled();
    expect(b.read.map((m) => decode(m.body))).toEqual(['h']);
    expect(b.errors).toEqual([]);

    // 30 days on, less a minute: the second is replaced too, the first still kept (its
    // successor is not 30 days old yet).
    await passes(b, SIGNED_PREKEY_KEEP_MS - 60_000);
    await prekeys.topUp();
    const third = net.published.get(b.deviceId)!.signedPrekey.keyId;
    expect((await b.e2ee.store.signedPreKeyIds()).sort()).toEqual([first, second, third].sort());
    // A minute later the first goes; the second stays 30 days after the third was made.
    await passes(b, 60_000);
    await prekeys.topUp();
    expect(net.published.get(b.deviceId)!.signedPrekey.keyId).toBe(third);
    expect((await b.e2ee.store.signedPreKeyIds()).sort()).toEqual([second, third].sort());
  });

  it('a signed prekey the store does not hold is replaced at once', async () => {
    const net = createFakeNetwork();
    const b = await net.device('bob');
    const first = net.published.get(b.deviceId)!.signedPrekey.keyId;
    await b.e2ee.store.deleteSignedPreKey(first);
    await prekeysOf(b).topUp();
    const now = net.published.get(b.deviceId)!.signedPrekey.keyId;
    expect(now).not.toBe(first);
    expect(await b.e2ee.store.signedPreKeyIds()).toEqual([now]);
  });
});
