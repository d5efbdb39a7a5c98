import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { uuidv7 } from 'uuidv7';
import { appRouter, createCallerFactory, createContext } from '@mvp/api';
import { defaultConfig } from '../src/index';
import {
  befriend,
  clientWithToken,
  currentDeviceId,
  registerUser,
  signInOnAnotherDevice,
} from './helpers/accounts';
import { backendLabel } from './helpers/env';
import { b64, newClientMessageId, sendText } from './helpers/messaging';
import { startServer, type TestServer } from './helpers/startServer';
import { openStream, type Received } from './helpers/sync';

/**
 * A write's wake-up carries what it appended, so a device at the head of its stream is served
 * without a database read. These tests pin that it serves exactly what a read would: the same
 * events under the same ids, and never another device's rows.
 */
describe(`events carried by the wake-up (${backendLabel})`, () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startServer();
  });
  afterAll(() => t.stop());

  const api = (token: string) => clientWithToken(t, token).api;

  it("a live device gets its own rows under a read's ids, and not another device's", async () => {
    const [alice, bob] = [await registerUser(t), await registerUser(t)];
    await befriend(t, alice, bob);
    const chat = await api(alice.accessToken).conversations.create.mutate({
      kind: 'direct',
      userId: bob.userId,
    });
    const bobLaptop = await signInOnAnotherDevice(t, bob, 'Laptop');
    const laptopId = await currentDeviceId(t, bobLaptop);
    const phone = await openStream(t, bob.accessToken);
    const laptop = await openStream(t, bobLaptop);

    // An invite for the laptop only, then a message for every device of Bob.
    await api(alice.accessToken).calls.start.mutate({
      callId: uuidv7(),
      calleeId: bob.userId,
      media: 'audio',
      offers: [{ deviceId: laptopId, ciphertext: b64('offer for the laptop') }],
    });
    const invite = await laptop.next('call.invite');
    const sent = await sendText(t, alice, chat.id, 'after the call');
    const onLaptop = await laptop.next('message.new');

    const beforeMessage: Received[] = [];
    for (;;) {
      const got = await phone.events.next();
      if (got.event.type === 'message.new') {
        expect(got).toEqual(onLaptop);
        break;
      }
      beforeMessage.push(got);
    }
    expect(beforeMessage.map((r) => r.event.type)).not.toContain('call.invite');
    expect(onLaptop.event.message.seq).toBe(sent.seq);
    expect(Number(onLaptop.id)).toBeGreaterThan(Number(invite.id));

    // Read back from the database from just before the invite: the same message, the same id.
    const replay = await openStream(t, bob.accessToken, String(Number(invite.id) - 1));
    expect(await replay.next('message.new')).toEqual(onLaptop);
    await Promise.all([phone.close(), laptop.close(), replay.close()]);
  });

  it('a device that missed a write reads the gap, in order, without duplicates', async () => {
    const [alice, bob] = [await registerUser(t), await registerUser(t)];
    await befriend(t, alice, bob);
    const chat = await api(alice.accessToken).conversations.create.mutate({
      kind: 'direct',
      userId: bob.userId,
    });
    const first = await openStream(t, bob.accessToken);
    await sendText(t, alice, chat.id, 'one');
    const one = await first.next('message.new');
    await first.close();
    // Written while Bob's phone is away: the next wake-up it hears starts past its cursor.
    await sendText(t, alice, chat.id, 'two');
    const again = await openStream(t, bob.accessToken, one.id);
    await sendText(t, alice, chat.id, 'three');
    const seqs = [
      (await again.next('message.new')).event.message.seq,
      (await again.next('message.new')).event.message.seq,
    ];
    expect(seqs).toEqual([one.event.message.seq + 1, one.event.message.seq + 2]);
    await sendText(t, alice, chat.id, 'four');
    expect((await again.next('message.new')).event.message.seq).toBe(seqs[1]! + 1);
    await again.close();
  });
});

// The bus is at most once: a wake-up lost between the commit and the stream (a publish that
// failed, an instance that died, Redis reconnecting) must not leave a device at its head waiting
// for its user's next event.
describe(`a lost wake-up (${backendLabel})`, () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startServer({
      messaging: { ...defaultConfig().messaging, streamSessionCheckMs: 100 },
    });
  });
  afterAll(() => t.stop());

  /**
   * Bob's stream open, and Alice's message to him sent on this server's ports but with a bus
   * that loses every publish: stored, and nobody woken.
   */
  const sentUnannounced = async () => {
    const [alice, bob] = [await registerUser(t), await registerUser(t)];
    await befriend(t, alice, bob);
    const chat = await clientWithToken(t, alice.accessToken).api.conversations.create.mutate({
      kind: 'direct',
      userId: bob.userId,
    });
    const stream = await openStream(t, bob.accessToken);
    const { ports } = t.server.infra;
    const ctx = await createContext(
      { ...ports, bus: { ...ports.bus, publish: async () => undefined } },
      t.server.settings,
      { requestId: 'unannounced', ip: '127.0.0.1', transport: 'http', token: alice.accessToken },
    );
    const sent = await createCallerFactory(appRouter)(ctx).messages.send({
      conversationId: chat.id,
      clientMessageId: newClientMessageId(),
      contentType: 'text/plain',
      ciphertext: b64('unannounced'),
    });
    return { alice, bob, chat, stream, sent };
  };

  it('is made good by the stream reading again now and then', async () => {
    const { stream, sent } = await sentUnannounced();
    expect((await stream.next('message.new')).event.message.seq).toBe(sent.seq);
    await stream.close();
  });

  it('an ephemeral event never overtakes a durable one woken before it', async () => {
    const { alice, bob, chat, stream, sent } = await sentUnannounced();
    const { ports } = t.server.infra;
    // The message's wake-up (a plain one: read the stream), then Alice typing, together.
    const channel = `user:${bob.userId}`;
    const typing = {
      type: 'typing',
      conversationId: chat.id,
      userId: alice.userId,
      until: new Date(Date.now() + 6_000).toISOString(),
    };
    await Promise.all([
      ports.bus.publish(channel, { type: 'wake' }),
      ports.bus.publish(channel, typing),
    ]);
    const order: string[] = [];
    while (order.length < 2) {
      const { event } = await stream.events.next();
      if (event.type === 'message.new') order.push(`message ${event.message.seq}`);
      if (event.type === 'typing') order.push('typing');
    }
    expect(order).toEqual([`message ${sent.seq}`, 'typing']);
    await stream.close();
  });
});
