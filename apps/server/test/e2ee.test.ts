import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import WebSocket from 'ws';
import {
  createMemoryCryptoStore,
  createMemoryCursorStore,
  E2EE_CONTENT_TYPE,
  isUntrustedIdentityError,
  type CryptoStore,
  type CursorStore,
  type DecryptedMessage,
  type IdentityChange,
  type Message,
  type MvpClient,
  type SyncEvent,
  type UndecryptableMessage,
} from '@mvp/sdk';
import { defaultConfig } from '../src/index';
import { DEVICE, PASSWORD, registerUser, type Account } from './helpers/accounts';
import { eventQueue } from './helpers/collect';
import { backendLabel } from './helpers/env';
import { startServer, type TestServer } from './helpers/startServer';

const encode = (text: string) => new TextEncoder().encode(text);
const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

/** One SDK client with E2EE on, and what its app was handed. */
type Device = {
  client: MvpClient;
  account: Account;
  token: string;
  deviceId: string;
  messages: ReturnType<typeof eventQueue<DecryptedMessage>>;
  undecryptable: ReturnType<typeof eventQueue<UndecryptableMessage>>;
  /** Every plaintext this device's app ever saw. */
  seen: string[];
  errors: unknown[];
};

describe(`end-to-end encryption through the SDK (${backendLabel})`, () => {
  let t: TestServer;
  /** Every plaintext sent in this file: none may reach the database. */
  const secrets: string[] = [];
  const secret = (label: string) => {
    const text = `${label} ${randomUUID()}`;
    secrets.push(text);
    return text;
  };
  const devices: Device[] = [];
  const conversations: string[] = [];

  beforeAll(async () => {
    // Six claims make a device's stock low: the top-up path runs in these tests.
    t = await startServer({ keys: { ...defaultConfig().keys, lowThreshold: 95 } });
  });
  afterAll(async () => {
    for (const d of devices) await d.client.close();
    await t.stop();
  });

  const device = async (
    account: Account,
    options: { token?: string; store?: CryptoStore; cursorStore?: CursorStore } = {},
  ): Promise<Device> => {
    const token = options.token ?? account.accessToken;
    const client = t.newClient({
      getToken: () => token,
      WebSocket,
      crypto: options.store ? { store: options.store } : {},
      ...(options.cursorStore ? { cursorStore: options.cursorStore } : {}),
    });
    const d: Device = {
      client,
      account,
      token,
      deviceId: (await client.api.sessions.list.query()).sessions.find((s) => s.current)!.device.id,
      messages: eventQueue<DecryptedMessage>(),
      undecryptable: eventQueue<UndecryptableMessage>(),
      seen: [],
      errors: [],
    };
    client.e2ee.onMessage((m) => {
      d.seen.push(decode(m.body));
      d.messages.push(m);
    });
    client.e2ee.onUndecryptable((u) => d.undecryptable.push(u));
    client.e2ee.onError((e) => d.errors.push(e));
    await client.e2ee.setup();
    devices.push(d);
    return d;
  };

  /** Another device of the same account: a second sign-in. */
  const secondDevice = async (account: Account) => {
    const res = await t.client.api.auth.login.mutate({
      identifier: account.username,
      password: PASSWORD,
      device: { ...DEVICE, name: 'Second' },
    });
    if (res.status !== 'ok') throw new Error('expected tokens');
    return device(account, { token: res.accessToken });
  };

  const befriend = async (a: Device, b: Device) => {
    await a.client.people.contacts.request(b.account.userId);
    await b.client.people.contacts.request(a.account.userId);
  };

  /** Waits for this plaintext in this conversation (skipping other messages) and returns it. */
  const receives = async (d: Device, conversationId: string, text: string) => {
    for (;;) {
      const m = await d.messages.next(10_000);
      if (m.message.conversationId === conversationId && decode(m.body) === text) return m;
    }
  };

  const send = async (d: Device, conversationId: string, text: string) =>
    (await d.client.e2ee.send(conversationId, { contentType: 'text/plain', body: encode(text) }))
      .result;

  it('publishes device keys on setup and tops them up after a keys.low event', async () => {
    const [alice, bob] = [await registerUser(t), await registerUser(t)];
    const a = await device(alice);
    expect(await a.client.api.keys.count.query()).toMatchObject({ oneTimePrekeys: 100 });
    const listed = await a.client.api.keys.devices.query({ userId: alice.userId });
    expect(listed.devices.map((d) => d.deviceId)).toEqual([a.deviceId]);

    // Setup again (a restart with the same store) publishes nothing new.
    await a.client.e2ee.setup();
    expect(await a.client.api.keys.count.query()).toMatchObject({ oneTimePrekeys: 100 });

    const lowSeen = eventQueue<number>();
    a.client.sync.onEvent((event) => {
      if (event.type === 'keys.low') lowSeen.push(event.remaining);
    });
    const b = await device(bob);
    for (let i = 0; i < 6; i++) await b.client.api.keys.claim.mutate({ userId: alice.userId });
    expect(await lowSeen.next()).toBeLessThan(95);
    await vi.waitFor(
      async () =>
        expect((await a.client.api.keys.count.query()).oneTimePrekeys).toBeGreaterThanOrEqual(95),
      { timeout: 10_000, interval: 50 },
    );
    expect(a.errors).toEqual([]);
  });

  it('two users, one with two devices, talk in a direct conversation', async () => {
    const [alice, bob] = [await registerUser(t), await registerUser(t)];
    const [a, b1] = [await device(alice), await device(bob)];
    const b2 = await secondDevice(bob);
    const chat = (await a.client.messaging.conversations.createDirect(bob.userId)).id;
    conversations.push(chat);

    const hello = secret('hello bob');
    const stored = await send(a, chat, hello);
    expect(stored.contentType).toBe(E2EE_CONTENT_TYPE);
    expect(decode(stored.ciphertext!)).not.toContain('hello');
    for (const d of [b1, b2, a]) {
      const got = await receives(d, chat, hello);
      expect(got).toMatchObject({ contentType: 'text/plain', late: false });
      expect(got.message.senderId).toBe(alice.userId);
    }

    const reply = secret('hi alice');
    await send(b1, chat, reply);
    for (const d of [a, b2, b1]) await receives(d, chat, reply);

    const fromSecond = secret('from my phone');
    await send(b2, chat, fromSecond);
    for (const d of [a, b1]) await receives(d, chat, fromSecond);

    // Safety numbers agree on both sides, and verifying records them on the server.
    const [aliceSide] = (await a.client.e2ee.safetyNumbers(bob.userId)).filter(
      (s) => s.deviceId === b1.deviceId,
    );
    const bobSide = await b1.client.e2ee.safetyNumber(alice.userId);
    expect(bobSide.digits).toMatch(/^\d{60}$/);
    expect(aliceSide!.digits).toBe(bobSide.digits);
    expect(aliceSide!.qrPayload).toEqual(bobSide.qrPayload);
    const compared = await b1.client.e2ee.safetyNumbers(alice.userId);
    expect(await b1.client.e2ee.markVerified(alice.userId, 'manual', compared)).toMatchObject({
      userId: alice.userId,
      fingerprint: bobSide.digits,
      verified: true,
    });
    for (const d of [a, b1, b2]) expect(d.errors).toEqual([]);
  });

  it('three users talk in a group; a removed member cannot read what follows', async () => {
    const [alice, bob, carol] = [
      await registerUser(t),
      await registerUser(t),
      await registerUser(t),
    ];
    const [a, b, c] = [await device(alice), await device(bob), await device(carol)];
    await befriend(a, b);
    await befriend(a, c);
    const group = (
      await a.client.messaging.conversations.createGroup({
        title: 'Team',
        memberIds: [bob.userId, carol.userId],
      })
    ).id;
    conversations.push(group);

    for (const [sender, label] of [
      [a, 'from alice'],
      [b, 'from bob'],
      [c, 'from carol'],
    ] as const) {
      const text = secret(label);
      await send(sender, group, text);
      for (const d of [a, b, c]) await receives(d, group, text);
    }

    await a.client.messaging.conversations.removeMember(group, carol.userId);
    const afterRemoval = [secret('alice after removal'), secret('bob after removal')];
    await send(a, group, afterRemoval[0]!);
    await send(b, group, afterRemoval[1]!);
    const read: Message[] = [];
    for (const text of afterRemoval) {
      await receives(a, group, text);
      read.push((await receives(b, group, text)).message);
    }
    // Carol is not sent these; even with the ciphertexts in hand she lacks the new keys.
    for (const message of read) {
      expect(await c.client.e2ee.decrypt(message)).toEqual({ ok: false, reason: 'missing_key' });
    }
    for (const text of afterRemoval) expect(c.seen).not.toContain(text);
    for (const d of [a, b, c]) expect(d.errors).toEqual([]);
  });

  it('a device that missed the key distribution reports the message, asks, and reads it late', async () => {
    const [alice, bob] = [await registerUser(t), await registerUser(t)];
    const a = await device(alice);
    const store = createMemoryCryptoStore();
    const cursorStore = createMemoryCursorStore();
    const first = await device(bob, { store, cursorStore });
    const chat = (await a.client.messaging.conversations.createDirect(bob.userId)).id;
    conversations.push(chat);
    await first.client.close(); // Bob's app is closed; its keys and cursor are kept

    const missed = secret('sent while you were away');
    await send(a, chat, missed);
    // The envelope with Alice's sender key is lost (as if it expired before Bob came back).
    const db = t.server.infra.ports.db;
    const dropped = await db
      .deleteFrom('user_events')
      .where('device_id', '=', first.deviceId)
      .where('type', '=', 'envelope')
      .executeTakeFirst();
    expect(Number(dropped.numDeletedRows)).toBeGreaterThan(0);

    const b = await device(bob, { store, cursorStore }); // Bob's app again, same device
    const report = await b.undecryptable.next(10_000);
    expect(report.reason).toBe('missing_key');
    expect(report.message.conversationId).toBe(chat);
    const late = await receives(b, chat, missed);
    expect(late).toMatchObject({ late: true, contentType: 'text/plain' });
    expect(late.message.id).toBe(report.message.id);

    // The conversation goes on normally from here.
    const next = secret('welcome back');
    await send(a, chat, next);
    expect(await receives(b, chat, next)).toMatchObject({ late: false });
    // Retrying a message already read answers true at once and delivers it (late) again.
    expect(await b.client.e2ee.retry(late.message)).toBe(true);
    expect(b.errors).toEqual([]);
  });

  it('a message whose key was lost and then replaced is sent again as content, and read late', async () => {
    const [alice, bob, carol] = [
      await registerUser(t),
      await registerUser(t),
      await registerUser(t),
    ];
    const a = await device(alice);
    const store = createMemoryCryptoStore();
    const cursorStore = createMemoryCursorStore();
    const first = await device(bob, { store, cursorStore });
    const c = await device(carol);
    await befriend(a, first);
    await befriend(a, c);
    const group = (
      await a.client.messaging.conversations.createGroup({
        title: 'Resends',
        memberIds: [bob.userId, carol.userId],
      })
    ).id;
    conversations.push(group);
    await first.client.close(); // Bob's app is closed; its keys and cursor are kept

    const missed = secret('sent before carol left');
    await send(a, group, missed);
    // The envelope with Alice's key is lost, and Carol leaves: Alice's next send makes a new
    // key, so the one Bob will ask for is gone.
    const dropped = await t.server.infra.ports.db
      .deleteFrom('user_events')
      .where('device_id', '=', first.deviceId)
      .where('type', '=', 'envelope')
      .executeTakeFirst();
    expect(Number(dropped.numDeletedRows)).toBeGreaterThan(0);
    await a.client.messaging.conversations.removeMember(group, carol.userId);
    const after = secret('after carol left');
    await send(a, group, after);

    const b = await device(bob, { store, cursorStore }); // Bob's app again, same device
    expect(await receives(b, group, after)).toMatchObject({ late: false });
    const late = await receives(b, group, missed);
    expect(late).toMatchObject({ late: true, contentType: 'text/plain' });
    expect(late.message.seq).toBeLessThan((await receives(a, group, after)).message.seq);
    expect(b.errors).toEqual([]);
    expect(a.errors).toEqual([]);
  });

  it('edits travel encrypted and reach every device decrypted, as edits, from any of my devices', async () => {
    const [alice, bob] = [await registerUser(t), await registerUser(t)];
    const [a, b] = [await device(alice), await device(bob)];
    const chat = (await a.client.messaging.conversations.createDirect(bob.userId)).id;
    conversations.push(chat);
    const typo = secret('typo');
    const original = await send(a, chat, typo);
    for (const d of [b, a]) expect(await receives(d, chat, typo)).toMatchObject({ edited: false });

    const fixed = secret('fixed');
    const edit = async (d: Device, text: string) => {
      const handle = await d.client.e2ee.edit(chat, original.seq, {
        contentType: 'text/plain',
        body: encode(text),
      });
      // Queued in the outbox as an edit of that message, until the server has it.
      expect(d.client.outbox.pending(chat)).toMatchObject([
        { clientMessageId: handle.clientMessageId, editSeq: original.seq },
      ]);
      return handle.result;
    };
    const stored = await edit(a, fixed);
    expect(a.client.outbox.pending()).toEqual([]);
    expect(stored).toMatchObject({
      id: original.id,
      seq: original.seq,
      contentType: E2EE_CONTENT_TYPE,
    });
    expect(stored.editedAt).not.toBeNull();
    for (const d of [b, a])
      expect(await receives(d, chat, fixed)).toMatchObject({
        edited: true,
        late: false,
        contentType: 'text/plain',
        message: { id: original.id, editedAt: stored.editedAt },
      });

    // From Alice's second device; Bob's history shows the latest version, readable.
    const laptop = await secondDevice(alice);
    const again = secret('fixed again');
    await edit(laptop, again);
    expect(await receives(b, chat, again)).toMatchObject({ edited: true });
    const [current] = (await b.client.messaging.messages.history(chat)).messages;
    expect(current!.id).toBe(original.id);
    const read = await b.client.e2ee.decrypt(current!);
    expect(read.ok && decode(read.body)).toBe(again);
    for (const d of [a, b, laptop]) {
      expect(d.errors).toEqual([]);
      expect(d.undecryptable.size).toBe(0);
    }
  });

  it('replaces a signed prekey two days old when the app starts, and peers use the new one', async () => {
    const [alice, bob] = [await registerUser(t), await registerUser(t)];
    const store = createMemoryCryptoStore();
    const first = await device(bob, { store });
    const before = (await first.client.api.keys.count.query()).signedPrekeyId;
    await first.client.close();
    // Two days pass while Bob's app is closed.
    for (const id of await store.signedPreKeyIds()) {
      const key = (await store.getSignedPreKey(id))!;
      await store.putSignedPreKey({ ...key, createdAt: key.createdAt - 2 * 24 * 3600_000 });
    }
    const b = await device(bob, { store, token: first.token });
    const after = (await b.client.api.keys.count.query()).signedPrekeyId;
    expect(after).not.toBe(before);
    expect((await store.signedPreKeyIds()).sort()).toEqual([before, after].sort());

    // Alice's first session with Bob is made from the new key, and Bob reads her.
    const a = await device(alice);
    const chat = (await a.client.messaging.conversations.createDirect(bob.userId)).id;
    conversations.push(chat);
    const hello = secret('made from the new signed prekey');
    await send(a, chat, hello);
    await receives(b, chat, hello);
    expect([a.errors, b.errors]).toEqual([[], []]);
  });

  it("a verified contact's keys change: my sends to them stop until I accept, whatever the server says", async () => {
    const [alice, bob] = [await registerUser(t), await registerUser(t)];
    const [a, b] = [await device(alice), await device(bob)];
    const keyChanges = eventQueue<SyncEvent>();
    a.client.sync.onEvent((event) => {
      if (event.type === 'device.keys' && event.change === 'changed') keyChanges.push(event);
    });
    const told: IdentityChange[] = [];
    a.client.e2ee.onIdentityChange((change) => void told.push(change));
    const chat = (await a.client.messaging.conversations.createDirect(bob.userId)).id;
    conversations.push(chat);
    const before = secret('before the change');
    await send(a, chat, before);
    await receives(b, chat, before);
    await a.client.e2ee.markVerified(
      bob.userId,
      'qr',
      await a.client.e2ee.safetyNumbers(bob.userId),
    );
    expect(await a.client.e2ee.isVerified(bob.userId)).toBe(true);

    // Bob's phone loses its keys (the app reinstalled, still signed in): it publishes new ones.
    await b.client.close();
    const reinstalled = await device(bob, { token: b.token });
    expect(reinstalled.deviceId).toBe(b.deviceId);
    expect(await keyChanges.next(10_000)).toMatchObject({
      userId: bob.userId,
      deviceId: b.deviceId,
    });

    const refused = await send(a, chat, 'held back').catch((error: unknown) => error);
    expect(isUntrustedIdentityError(refused)).toBe(true);
    expect(told).toEqual([
      { userId: bob.userId, deviceId: b.deviceId, change: 'changed', verified: true },
    ]);
    expect((await a.client.messaging.messages.history(chat)).messages).toHaveLength(1);

    // Alice accepts the change ("send anyway"): Bob is no longer verified, and reads on.
    await a.client.e2ee.trustIdentities(bob.userId);
    expect(await a.client.e2ee.isVerified(bob.userId)).toBe(false);
    const after = secret('after accepting');
    await send(a, chat, after);
    await receives(reinstalled, chat, after);
    expect(a.errors).toEqual([]);
  });

  it('leaves no plaintext in the database', async () => {
    expect(secrets.length).toBeGreaterThan(5);
    const db = t.server.infra.ports.db;
    const messages = await db
      .selectFrom('messages')
      .select(['ciphertext', 'content_type'])
      .where('conversation_id', 'in', conversations)
      .execute();
    // This file's users' streams (a reused test database holds other runs' events too).
    const users = [...new Set(devices.map((d) => d.account.userId))];
    const events = await db
      .selectFrom('user_events')
      .select(['payload'])
      .where('user_id', 'in', users)
      .execute();
    const blobs = [
      ...messages.map((m) => Buffer.from(m.ciphertext ?? new Uint8Array()).toString('latin1')),
      ...events.map((e) => e.payload),
    ];
    expect(blobs.length).toBeGreaterThan(secrets.length);
    for (const text of secrets) {
      const forms = [text, Buffer.from(text).toString('base64'), text.split(' ').at(-1)!];
      for (const blob of blobs) for (const form of forms) expect(blob).not.toContain(form);
    }
    // Not even the content type: the server stores only the e2ee label.
    expect(new Set(messages.map((m) => m.content_type))).toEqual(new Set([E2EE_CONTENT_TYPE]));
  });
});
