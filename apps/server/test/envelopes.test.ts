import { uuidv7 } from 'uuidv7';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pruneStreams } from '@mvp/api';
import {
  befriend,
  clientWithToken,
  currentDeviceId,
  registerUser,
  signInOnAnotherDevice,
  type Account,
} from './helpers/accounts';
import { backendLabel } from './helpers/env';
import { defaultConfig } from '../src/index';
import { startServer, type TestServer } from './helpers/startServer';
import { openStream } from './helpers/sync';
import { codeOf } from './helpers/errors';

const b64 = (text: string) => Buffer.from(text).toString('base64');
describe(`one sender cannot fill a device's envelope queue alone (${backendLabel})`, () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startServer({
      messaging: { ...defaultConfig().messaging, deviceQueueCap: 4, deviceQueueSenderCap: 2 },
    });
  });
  afterAll(() => t.stop());

  it('past its share a sender is told the device is full, while others still reach it', async () => {
    const [mallory, alice, bob] = [
      await registerUser(t),
      await registerUser(t),
      await registerUser(t),
    ];
    const bobPhone = await currentDeviceId(t, bob.accessToken);
    const to = (text: string) => ({
      userId: bob.userId,
      deviceId: bobPhone,
      contentType: 'mvp/key-share',
      ciphertext: b64(text),
    });
    const send = (from: Account, ...texts: string[]) =>
      clientWithToken(t, from.accessToken).api.sync.sendToDevices.mutate({
        envelopes: texts.map(to),
      });
    const start = (await clientWithToken(t, bob.accessToken).api.sync.snapshot.query()).cursor;

    await send(mallory, 'm1', 'm2');
    expect(await codeOf(send(mallory, 'm3'))).toBe('TOO_MANY_REQUESTS');
    expect((await send(alice, 'a1', 'a2')).full).toEqual([]);
    // Now full for everyone: the device's own cap.
    expect(await codeOf(send(bob, 'b1'))).toBe('TOO_MANY_REQUESTS');
    const queued = await clientWithToken(t, bob.accessToken).api.sync.poll.query({ after: start });
    expect(
      queued.events.map((e) => e.event.type === 'envelope' && e.event.envelope.ciphertext),
    ).toEqual(['m1', 'm2', 'a1', 'a2'].map(b64));
  });
});

describe(`a device's envelope queue counts envelopes only (${backendLabel})`, () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startServer({
      messaging: { ...defaultConfig().messaging, deviceQueueCap: 4, deviceQueueSenderCap: 2 },
    });
  });
  afterAll(() => t.stop());

  it('calls placed and cancelled (their invites stay in the stream) do not fill it', async () => {
    const [mallory, alice, bob] = [
      await registerUser(t),
      await registerUser(t),
      await registerUser(t),
    ];
    const bobPhone = await currentDeviceId(t, bob.accessToken);
    const calls = clientWithToken(t, mallory.accessToken).api.calls;
    for (let i = 0; i < 5; i++) {
      const { id } = await calls.start.mutate({
        callId: uuidv7(),
        calleeId: bob.userId,
        media: 'audio',
        offers: [{ deviceId: bobPhone, ciphertext: b64('offer') }],
      });
      await calls.cancel.mutate({ callId: id });
    }
    const sent = await clientWithToken(t, alice.accessToken).api.sync.sendToDevices.mutate({
      envelopes: [
        { userId: bob.userId, deviceId: bobPhone, contentType: 'mvp/key', ciphertext: b64('k') },
      ],
    });
    expect(sent.full).toEqual([]);
  });
});

describe(`device-to-device envelopes and stream retention (${backendLabel})`, () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startServer({
      messaging: {
        ...defaultConfig().messaging,
        maxCiphertextBytes: 1024,
        groupMemberCap: 10,
        deviceQueueCap: 3,
        retentionDays: 30,
      },
    });
  });
  afterAll(() => t.stop());

  const api = (token: string) => clientWithToken(t, token).api;
  const deviceOf = (token: string) => currentDeviceId(t, token);
  const secondDevice = (a: Account) => signInOnAnotherDevice(t, a);
  const envelope = (to: Account, deviceId: string, text: string) => ({
    userId: to.userId,
    deviceId,
    contentType: 'mvp/key-share',
    ciphertext: b64(text),
  });

  it('reaches only the addressed device, survives reconnects until acked, then is gone', async () => {
    const [alice, bob] = [await registerUser(t), await registerUser(t)];
    const laptop = await secondDevice(bob);
    const [phoneId, laptopId] = [await deviceOf(bob.accessToken), await deviceOf(laptop)];
    const start = (await api(bob.accessToken).sync.snapshot.query()).cursor;

    const sent = await api(alice.accessToken).sync.sendToDevices.mutate({
      envelopes: [envelope(bob, phoneId, 'for the phone')],
    });
    expect(sent.ids).toHaveLength(1);

    const phone = await openStream(t, bob.accessToken, start);
    const got = await phone.next('envelope');
    expect(got.event.envelope).toMatchObject({
      id: sent.ids[0],
      senderId: alice.userId,
      contentType: 'mvp/key-share',
      ciphertext: b64('for the phone'),
    });
    await phone.close();
    // The laptop's stream from the same cursor has nothing: the envelope was not for it.
    const other = await api(laptop).sync.poll.query({ after: start });
    expect(other.events).toEqual([]);

    // Not acked: a reconnect from the same cursor gets it again.
    expect((await api(bob.accessToken).sync.poll.query({ after: start })).events).toHaveLength(1);
    // A cold start (no cursor kept) still gets it: the snapshot carries what waits for this device.
    const cold = await api(bob.accessToken).sync.snapshot.query();
    expect(cold.pendingEnvelopes).toEqual([{ id: got.id, envelope: got.event.envelope }]);
    expect((await api(laptop).sync.snapshot.query()).pendingEnvelopes).toEqual([]);
    await api(bob.accessToken).sync.ack.mutate({ upTo: got.id });
    expect((await api(bob.accessToken).sync.poll.query({ after: start })).events).toEqual([]);
    expect((await api(bob.accessToken).sync.snapshot.query()).pendingEnvelopes).toEqual([]);
    expect(laptopId).not.toBe(phoneId);
  });

  it('an ack deletes envelopes only: a call still ringing is listed by a cold start after the device acked past its invite', async () => {
    const [alice, bob] = [await registerUser(t), await registerUser(t)];
    const phoneId = await deviceOf(bob.accessToken);
    const start = (await api(bob.accessToken).sync.snapshot.query()).cursor;
    // A call rings on the phone, and an envelope (say, a key for it) follows its invite.
    const call = await api(alice.accessToken).calls.start.mutate({
      callId: uuidv7(),
      calleeId: bob.userId,
      media: 'audio',
      offers: [{ deviceId: phoneId, ciphertext: b64('offer') }],
    });
    await api(alice.accessToken).sync.sendToDevices.mutate({
      envelopes: [envelope(bob, phoneId, 'a key')],
    });
    const streamed = (await api(bob.accessToken).sync.poll.query({ after: start })).events;
    expect(streamed.map((e) => e.event.type)).toEqual(['call.invite', 'envelope']);

    // The phone handles both and acks the envelope; then the app is closed and opened again.
    await api(bob.accessToken).sync.ack.mutate({ upTo: streamed[1]!.id });
    const cold = await api(bob.accessToken).sync.snapshot.query();
    expect(cold.pendingEnvelopes).toEqual([]);
    expect(cold.ringingCalls).toEqual([
      expect.objectContaining({ call: expect.objectContaining({ id: call.id }) }),
    ]);
  });

  it('refuses unknown devices, oversize bytes and full queues; a blocker drops silently', async () => {
    const [alice, bob, carol] = [
      await registerUser(t),
      await registerUser(t),
      await registerUser(t),
    ];
    const bobPhone = await deviceOf(bob.accessToken);
    const carolPhone = await deviceOf(carol.accessToken);
    const send = (...list: ReturnType<typeof envelope>[]) =>
      api(alice.accessToken).sync.sendToDevices.mutate({ envelopes: list });

    // A real device of someone else is as unknown as a made-up one.
    expect(await codeOf(send(envelope(bob, carolPhone, 'x')))).toBe('NOT_FOUND');
    expect(await codeOf(send(envelope(bob, '0190d4a2-0000-7000-8000-000000000000', 'x')))).toBe(
      'NOT_FOUND',
    );
    expect(await codeOf(send(envelope(bob, bobPhone, 'x'.repeat(1025))))).toBe('PAYLOAD_TOO_LARGE');
    expect(
      await codeOf(api(alice.accessToken).sync.sendToDevices.mutate({ envelopes: [] as never[] })),
    ).toBe('BAD_REQUEST');
    const start = (await api(bob.accessToken).sync.snapshot.query()).cursor;
    expect((await api(bob.accessToken).sync.poll.query({ after: '0' })).events).toEqual([]);

    await send(
      envelope(bob, bobPhone, '1'),
      envelope(bob, bobPhone, '2'),
      envelope(bob, bobPhone, '3'),
    );
    expect(await codeOf(send(envelope(bob, bobPhone, '4')))).toBe('TOO_MANY_REQUESTS');
    const queued = await api(bob.accessToken).sync.poll.query({ after: start });
    expect(
      queued.events.map((e) => e.event.type === 'envelope' && e.event.envelope.ciphertext),
    ).toEqual([b64('1'), b64('2'), b64('3')]);
    // One full device does not hold back the others' envelopes (a key share to a group).
    const carolStart0 = (await api(carol.accessToken).sync.snapshot.query()).cursor;
    const mixed = await send(envelope(bob, bobPhone, '5'), envelope(carol, carolPhone, 'to carol'));
    expect(mixed.full).toEqual([bobPhone]);
    expect(mixed.ids).toHaveLength(2);
    const toCarol = await api(carol.accessToken).sync.poll.query({ after: carolStart0 });
    expect(
      toCarol.events.map((e) => e.event.type === 'envelope' && e.event.envelope.ciphertext),
    ).toEqual([b64('to carol')]);
    expect((await api(bob.accessToken).sync.poll.query({ after: start })).events).toHaveLength(3);

    await api(carol.accessToken).blocks.add.mutate({ userId: alice.userId });
    const carolStart = (await api(carol.accessToken).sync.snapshot.query()).cursor;
    expect((await send(envelope(carol, carolPhone, 'hi'))).ids).toHaveLength(1);
    expect((await api(carol.accessToken).sync.poll.query({ after: carolStart })).events).toEqual(
      [],
    );
  });

  it('envelopes said to concern a conversation go only between its members, stamped with it', async () => {
    const [alice, bob, carol, mallory] = [
      await registerUser(t),
      await registerUser(t),
      await registerUser(t),
      await registerUser(t),
    ];
    const [bobPhone, carolPhone] = [
      await deviceOf(bob.accessToken),
      await deviceOf(carol.accessToken),
    ];
    await befriend(t, alice, bob);
    const group = await api(alice.accessToken).conversations.create.mutate({
      kind: 'group',
      title: 'keys',
      memberIds: [bob.userId],
    });
    const sendAs = (from: Account, ...list: ReturnType<typeof envelope>[]) =>
      api(from.accessToken).sync.sendToDevices.mutate({
        conversationId: group.id,
        envelopes: list,
      });
    const received = async (who: Account, after: string) =>
      (await api(who.accessToken).sync.poll.query({ after })).events.flatMap((e) =>
        e.event.type === 'envelope' ? [e.event.envelope] : [],
      );
    const bobStart = (await api(bob.accessToken).sync.snapshot.query()).cursor;
    const carolStart = (await api(carol.accessToken).sync.snapshot.query()).cursor;

    // A member to a member: stored with the conversation. Carol is not in it: she gets nothing,
    // and Alice cannot tell (an id for each, as for a block).
    const sent = await sendAs(
      alice,
      envelope(bob, bobPhone, 'key'),
      envelope(carol, carolPhone, 'key'),
    );
    expect(sent.ids).toHaveLength(2);
    expect(await received(bob, bobStart)).toMatchObject([
      { senderId: alice.userId, ciphertext: b64('key'), conversationId: group.id },
    ]);
    expect(await received(carol, carolStart)).toEqual([]);

    // Mallory is not a member: NOT_FOUND, as for any conversation she cannot see; nothing stored.
    expect(await codeOf(sendAs(mallory, envelope(bob, bobPhone, 'made up')))).toBe('NOT_FOUND');
    expect(
      await codeOf(
        api(mallory.accessToken).sync.sendToDevices.mutate({
          conversationId: '0190d4a2-0000-7000-8000-000000000000',
          envelopes: [envelope(bob, bobPhone, 'made up')],
        }),
      ),
    ).toBe('NOT_FOUND');
    expect(
      await codeOf(
        api(alice.accessToken).sync.sendToDevices.mutate({
          conversationId: 'not-an-id',
          envelopes: [envelope(bob, bobPhone, 'x')],
        }),
      ),
    ).toBe('BAD_REQUEST');
    expect(await received(bob, bobStart)).toHaveLength(1);
    // Without a conversation, as before: nothing stamped.
    await api(mallory.accessToken).sync.sendToDevices.mutate({
      envelopes: [envelope(bob, bobPhone, 'hello')],
    });
    expect((await received(bob, bobStart)).at(-1)).not.toHaveProperty('conversationId');
  });

  it('a stream whose next rows were pruned before it read them gets resync, not a silent gap', async () => {
    const [alice, bob, carol] = [
      await registerUser(t),
      await registerUser(t),
      await registerUser(t),
    ];
    const { db } = t.server.infra.ports;
    const stream = await openStream(t, alice.accessToken);
    // Live, its backlog read: an event seen on it says so (and is where its cursor stands).
    await api(bob.accessToken).contacts.request.mutate({ userId: alice.userId });
    const head = Number((await stream.next('contact.request.received')).id);
    // Two rows after the stream's cursor that it has not read, old enough to be pruned (written
    // behind its back here: what a stream reading a long backlog meets when pruning overtakes it).
    const old = t.server.infra.ports.clock.now() - 31 * 24 * 3600 * 1000;
    await db.transaction().execute(async (trx) => {
      await trx
        .updateTable('user_streams')
        .set({ last_seq: head + 2 })
        .where('user_id', '=', alice.userId)
        .execute();
      await trx
        .insertInto('user_events')
        .values(
          [1, 2].map((n) => ({
            user_id: alice.userId,
            seq: head + n,
            device_id: null,
            type: 'contact.removed',
            payload: JSON.stringify({ userId: bob.userId }),
            created_at: old,
          })),
        )
        .execute();
    });
    const ctx = { ports: t.server.infra.ports, settings: t.server.settings } as Parameters<
      typeof pruneStreams
    >[0];
    // Not its count: on a shared database another test file's jobs run may have pruned these
    // rows first. What a stream is told afterwards is the test.
    await pruneStreams(ctx);
    // Something new wakes the stream: it must not hand it over as if nothing came before.
    await api(carol.accessToken).contacts.request.mutate({ userId: alice.userId });
    expect((await stream.events.next()).event).toEqual({ type: 'resync' });
    await stream.close();
  });

  it('events past the retention window are deleted and an older cursor gets resync', async () => {
    const alice = await registerUser(t);
    const old = t.server.infra.ports.clock.now() - 31 * 24 * 3600 * 1000;
    const { db } = t.server.infra.ports;
    // Two old events, written as the stream would have written them a month ago.
    await db.transaction().execute(async (trx) => {
      await trx
        .updateTable('user_streams')
        .set({ last_seq: 2 })
        .where('user_id', '=', alice.userId)
        .execute();
      await trx
        .insertInto('user_events')
        .values(
          [1, 2].map((seq) => ({
            user_id: alice.userId,
            seq,
            device_id: null,
            type: 'contact.removed',
            payload: JSON.stringify({ userId: alice.userId }),
            created_at: old,
          })),
        )
        .execute();
    });
    expect((await api(alice.accessToken).sync.poll.query({ after: '0' })).events).toHaveLength(2);

    const ctx = { ports: t.server.infra.ports, settings: t.server.settings } as Parameters<
      typeof pruneStreams
    >[0];
    await pruneStreams(ctx);
    expect((await api(alice.accessToken).sync.poll.query({ after: '0' })).events).toEqual([
      { id: '2', event: { type: 'resync' } },
    ]);
    // From the head all is well.
    expect((await api(alice.accessToken).sync.poll.query({ after: '2' })).events).toEqual([]);
    const stream = await openStream(t, alice.accessToken, '1');
    expect((await stream.events.next()).event).toEqual({ type: 'resync' });
    await stream.close();
  });
});
