import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { errorCodeOf, type MvpClient, type PeopleEvent } from '@mvp/sdk';
import { registerUser, type Account } from './helpers/accounts';
import { eventQueue } from './helpers/collect';
import { backendLabel } from './helpers/env';
import { startServer, type TestServer } from './helpers/startServer';

describe(`SDK people wrappers and live events (${backendLabel})`, () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startServer({ presence: { ttlSeconds: 30, throttleMs: 0 } });
  });
  afterAll(() => t.stop());

  const clients: MvpClient[] = [];
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close()));
  });
  const sdkFor = (a: Account) => {
    const client = t.newClient({ getToken: () => a.accessToken, WebSocket });
    clients.push(client);
    return client;
  };
  /** Starts `client.people.onEvent` and resolves once the server has started the stream. */
  const live = async (client: MvpClient) => {
    const events = eventQueue<PeopleEvent>();
    await new Promise<void>((resolve, reject) => {
      client.people.onEvent((e) => events.push(e), { onStarted: resolve, onError: reject });
    });
    return events;
  };

  it('finds someone, asks, is answered live, and both see each other as contacts', async () => {
    const [alice, bob] = [await registerUser(t), await registerUser(t)];
    const [a, b] = [sdkFor(alice), sdkFor(bob)];
    const bobEvents = await live(b);
    const aliceEvents = await live(a);

    const found = await a.people.search({ username: bob.username });
    expect(found.users.map((u) => u.id)).toEqual([bob.userId]);

    expect((await a.people.contacts.request(bob.userId, 'hi from the SDK')).status).toBe('pending');
    const received = await bobEvents.next();
    if (received.type !== 'contact.request.received') throw new Error(received.type);
    expect(received.request).toMatchObject({ message: 'hi from the SDK', direction: 'incoming' });
    expect((await b.people.contacts.requests()).incoming.map((r) => r.id)).toEqual([
      received.request.id,
    ]);

    expect(await aliceEvents.next()).toMatchObject({ type: 'contact.request.sent' });
    await b.people.contacts.accept(received.request.id);
    expect(await aliceEvents.next()).toMatchObject({ type: 'contact.request.accepted' });
    expect(await bobEvents.next()).toMatchObject({
      type: 'contact.request.accepted',
      user: { id: alice.userId },
    });
    expect((await a.people.contacts.list()).contacts.map((c) => c.id)).toEqual([bob.userId]);
    expect((await b.people.get(alice.userId)).isContact).toBe(true);

    await a.people.contacts.remove(bob.userId);
    expect(await bobEvents.next()).toEqual({ type: 'contact.removed', userId: alice.userId });
  });

  it('onPresence reports a contact coming online and leaving', async () => {
    const [alice, bob] = [await registerUser(t), await registerUser(t)];
    const b = sdkFor(bob);
    await b.people.contacts.request(alice.userId);
    expect((await sdkFor(alice).people.contacts.request(bob.userId)).status).toBe('accepted');

    const seen = eventQueue<{ userId: string; online: boolean | undefined }>();
    await new Promise<void>((resolve, reject) => {
      b.people.onPresence((userId, presence) => seen.push({ userId, online: presence?.online }), {
        onStarted: resolve,
        onError: reject,
      });
    });
    const phone = t.newClient({ getToken: () => alice.accessToken, WebSocket });
    await live(phone);
    expect(await seen.next()).toEqual({ userId: alice.userId, online: true });
    await phone.close();
    expect(await seen.next()).toEqual({ userId: alice.userId, online: false });
  });

  it('privacy, blocks and typed errors through the wrappers', async () => {
    const [alice, mallory] = [await registerUser(t), await registerUser(t)];
    const [a, m] = [sdkFor(alice), sdkFor(mallory)];
    expect(await a.people.privacy.update({ contactRequests: 'contacts' })).toMatchObject({
      contactRequests: 'contacts',
      presence: 'contacts',
    });
    expect((await a.people.privacy.get()).contactRequests).toBe('contacts');

    await a.people.blocks.add(mallory.userId);
    expect((await a.people.blocks.list()).blocked.map((u) => u.id)).toEqual([mallory.userId]);
    const refused = await m.people.contacts.request(alice.userId).catch((e: unknown) => e);
    expect(errorCodeOf(refused)).toBe('FORBIDDEN');
    await a.people.blocks.remove(mallory.userId);
    expect((await a.people.blocks.list()).blocked).toEqual([]);

    const malformed = await a.people.get('not an id').catch((e: unknown) => e);
    expect(errorCodeOf(malformed)).toBe('BAD_REQUEST');
    const unknown = await m.people.contacts
      .accept('0190d4a2-0000-7000-8000-000000000000')
      .catch((e: unknown) => e);
    expect(errorCodeOf(unknown)).toBe('NOT_FOUND');
  });
});
