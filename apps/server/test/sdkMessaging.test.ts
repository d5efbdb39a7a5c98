import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import {
  createMemoryCursorStore,
  createMemoryOutboxStore,
  createMemoryTokenStore,
  errorCodeOf,
  isMvpError,
  type CursorStore,
  type Message,
  type MvpClient,
  type MvpClientOptions,
  type Snapshot,
  type SyncEvent,
} from '@mvp/sdk';
import { befriend, DEVICE, PASSWORD, registerUser, type Account } from './helpers/accounts';
import { eventQueue } from './helpers/collect';
import { backendLabel } from './helpers/env';
import { startServer, type TestServer } from './helpers/startServer';

const bytes = (text: string) => new TextEncoder().encode(text);
const text = (message: Message) => new TextDecoder().decode(message.ciphertext ?? undefined);
const plain = (body: string) => ({ contentType: 'text/plain', ciphertext: bytes(body) });
/** What a cursor store holds, as the SDK writes it (JSON: the event id and whose stream it is in). */
const keptCursor = async (store: CursorStore) => {
  const value = await store.get();
  return value === null ? null : (JSON.parse(value) as { userId: string; id: string });
};

describe(`SDK messaging: outbox, sync engine, unread counts (${backendLabel})`, () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startServer();
  });
  afterAll(() => t.stop());

  const sdkFor = (a: Account, options: Partial<MvpClientOptions> = {}) =>
    t.newClient({ getToken: () => a.accessToken, WebSocket, ...options });

  /**
   * Starts `client.sync` the way an app does and records what the app is handed: snapshots,
   * and durable events with their ids (presence and typing are left out).
   */
  const live = async (client: MvpClient) => {
    const events = eventQueue<{ id: string; event: SyncEvent }>();
    const snapshots: Snapshot[] = [];
    const unread = eventQueue<{ conversationId: string; unread: number }>();
    client.sync.onSnapshot((s) => void snapshots.push(s));
    client.sync.onUnreadChange((conversationId, n) => unread.push({ conversationId, unread: n }));
    client.sync.onEvent((event, info) => {
      if (!info.ephemeral) events.push({ id: info.id, event });
    });
    await client.sync.start();
    return {
      snapshots,
      unread,
      /** The next `n` new messages of a conversation, skipping every other event. */
      async messages(conversationId: string, n: number) {
        const got: Message[] = [];
        while (got.length < n) {
          const { event } = await events.next();
          if (event.type === 'message.new' && event.message.conversationId === conversationId)
            got.push(event.message);
        }
        return got;
      },
      /** The unread count of a conversation once it reaches `n`. */
      async unreadReaches(conversationId: string, n: number) {
        while (client.sync.unread(conversationId) !== n) await unread.next();
      },
    };
  };

  const directChat = async (a: MvpClient, b: Account) =>
    (await a.messaging.conversations.createDirect(b.userId)).id;

  it('two users talk through their outboxes and each stream delivers every message in order', async () => {
    const [alice, bob] = [await registerUser(t), await registerUser(t)];
    const [a, b] = [sdkFor(alice), sdkFor(bob)];
    const chat = await directChat(a, bob);
    const [aliceLive, bobLive] = [await live(a), await live(b)];

    const fromAlice = ['one', 'two', 'three', 'four'].map((s) => a.outbox.send(chat, plain(s)));
    const fromBob = ['uno', 'dos'].map((s) => b.outbox.send(chat, plain(s)));
    const sent = await Promise.all([...fromAlice, ...fromBob].map((h) => h.result));
    expect(a.outbox.pending()).toEqual([]);
    expect(sent.map((m) => m.clientMessageId)).toEqual(
      [...fromAlice, ...fromBob].map((h) => h.clientMessageId),
    );

    for (const stream of [aliceLive, bobLive]) {
      const got = await stream.messages(chat, 6);
      expect(got.map((m) => m.seq)).toEqual([1, 2, 3, 4, 5, 6]);
      // Each sender's messages keep their order, whatever the interleaving.
      expect(got.filter((m) => m.senderId === alice.userId).map(text)).toEqual([
        'one',
        'two',
        'three',
        'four',
      ]);
      expect(got.filter((m) => m.senderId === bob.userId).map(text)).toEqual(['uno', 'dos']);
    }
    const page = await b.messaging.messages.history(chat, { limit: 2 });
    expect(page.messages.map((m) => [m.seq, m.ciphertext instanceof Uint8Array])).toEqual([
      [6, true],
      [5, true],
    ]);
    expect(page.more).toBe(true);
  });

  it('a restart with the same cursor store delivers exactly the missed messages, once', async () => {
    const [alice, bob] = [await registerUser(t), await registerUser(t)];
    const a = sdkFor(alice);
    const chat = await directChat(a, bob);
    const cursorStore: CursorStore = createMemoryCursorStore();

    const phone = sdkFor(bob, { cursorStore });
    const before = await live(phone);
    expect(before.snapshots).toHaveLength(1); // a cold start
    await a.outbox.send(chat, plain('before')).result;
    expect((await before.messages(chat, 1)).map(text)).toEqual(['before']);
    await phone.close(); // waits for the handled event's cursor to be saved

    for (const body of ['missed 1', 'missed 2', 'missed 3'])
      await a.outbox.send(chat, plain(body)).result;

    const restarted = sdkFor(bob, { cursorStore });
    const after = await live(restarted);
    expect(after.snapshots).toEqual([]); // resumed, not started over
    await a.outbox.send(chat, plain('live again')).result;
    const got = await after.messages(chat, 4);
    expect(got.map(text)).toEqual(['missed 1', 'missed 2', 'missed 3', 'live again']);
    expect(got.map((m) => m.seq)).toEqual([2, 3, 4, 5]);
    expect(await keptCursor(cursorStore)).toEqual({
      userId: bob.userId,
      id: expect.stringMatching(/^\d+$/),
    });
  });

  it('a send whose answer was lost is retried with the same id and stored once', async () => {
    const [alice, bob] = [await registerUser(t), await registerUser(t)];
    // The first send reaches the server and is stored, but its answer never arrives.
    let dropped = 0;
    const flakyFetch: typeof fetch = async (input, init) => {
      const response = await fetch(input, init);
      const url = input instanceof Request ? input.url : String(input);
      if (url.includes('messages.send') && dropped === 0) {
        dropped += 1;
        await response.arrayBuffer();
        throw new TypeError('fetch failed: connection reset');
      }
      return response;
    };
    const a = sdkFor(alice, { fetch: flakyFetch });
    const chat = await directChat(a, bob);
    const bobLive = await live(sdkFor(bob));

    const states: string[] = [];
    a.outbox.onChange((item) => states.push(item.state));
    const handle = a.outbox.send(chat, plain('only once'));
    const message = await handle.result;
    expect(dropped).toBe(1);
    expect(states).toEqual(['queued', 'sending', 'queued', 'sending', 'sent']);
    expect(message.clientMessageId).toBe(handle.clientMessageId);

    await a.outbox.send(chat, plain('next')).result;
    const got = await bobLive.messages(chat, 2);
    expect(got.map((m) => [m.seq, text(m)])).toEqual([
      [1, 'only once'],
      [2, 'next'],
    ]);
    const history = await a.messaging.messages.history(chat);
    expect(
      history.messages.filter((m) => m.clientMessageId === handle.clientMessageId),
    ).toHaveLength(1);
  });

  it('a message handed to the app is marked delivered by itself; its sender hears it, no one else', async () => {
    const [alice, bob, carol] = [
      await registerUser(t),
      await registerUser(t),
      await registerUser(t),
    ];
    await befriend(t, alice, bob);
    await befriend(t, alice, carol);
    const [a, b, c] = [sdkFor(alice), sdkFor(bob), sdkFor(carol, { deliveryReceipts: false })];
    const group = await a.messaging.conversations.createGroup({
      title: 'receipts',
      memberIds: [bob.userId, carol.userId],
    });
    /** Receipts from others that reach `client`, whose account is `self`. */
    const receiptsAt = async (client: MvpClient, self: Account) => {
      const got = eventQueue<Extract<SyncEvent, { type: 'receipt' }>>();
      client.sync.onEvent((event) => {
        if (event.type === 'receipt' && event.userId !== self.userId) got.push(event);
      });
      await client.sync.start();
      return got;
    };
    const [toAlice, toBob] = [await receiptsAt(a, alice), await receiptsAt(b, bob)];
    const carolLive = await live(c);
    const fromCarol = async (receipts: typeof toAlice) => {
      for (;;) {
        const receipt = await receipts.next();
        if (receipt.userId === carol.userId) return receipt;
      }
    };

    await a.outbox.send(group.id, plain('hi')).result; // seq 1
    expect(await toAlice.next()).toMatchObject({
      userId: bob.userId,
      conversationId: group.id,
      deliveredSeq: 1,
      readSeq: 0,
    });
    // Carol's client was told not to: she marks it herself.
    await carolLive.messages(group.id, 1);
    await c.messaging.messages.markRead(group.id, 1);
    expect(await toAlice.next()).toMatchObject({ userId: carol.userId, readSeq: 1 });

    // Bob's message: Alice's client marks it delivered, and Bob hears that and Carol's read.
    await b.outbox.send(group.id, plain('hello')).result; // seq 2
    expect(await toBob.next()).toMatchObject({ userId: alice.userId, deliveredSeq: 2 });
    await carolLive.messages(group.id, 1);
    await c.messaging.messages.markRead(group.id, 2);
    expect(await toBob.next()).toMatchObject({ userId: carol.userId, readSeq: 2 });
    // Carol's read of Bob's message was not news to Alice: her next from Carol is the read of 3.
    await a.outbox.send(group.id, plain('again')).result; // seq 3
    await carolLive.messages(group.id, 1);
    await c.messaging.messages.markRead(group.id, 3);
    expect(await fromCarol(toAlice)).toMatchObject({ readSeq: 3 });
    for (const client of [a, b, c]) await client.close();
  });

  it('unread counts follow new messages and markRead, and a cold start agrees', async () => {
    const [alice, bob] = [await registerUser(t), await registerUser(t)];
    const [a, b] = [sdkFor(alice), sdkFor(bob)];
    const chat = await directChat(a, bob);
    const [aliceLive, bobLive] = [await live(a), await live(b)];

    for (const body of ['1', '2', '3']) await a.outbox.send(chat, plain(body)).result;
    await bobLive.unreadReaches(chat, 3);
    expect(b.sync.unreadTotal()).toBe(3);
    await aliceLive.messages(chat, 3);
    expect(a.sync.unread(chat)).toBe(0); // my own messages are read

    expect(await b.messaging.messages.markRead(chat, 2)).toMatchObject({ readSeq: 2 });
    await bobLive.unreadReaches(chat, 1);

    // Another device of Bob's starts cold: the snapshot says the same.
    const tablet = sdkFor(bob);
    const tabletLive = await live(tablet);
    expect(
      tabletLive.snapshots[0]?.conversations.find((c) => c.conversation.id === chat),
    ).toMatchObject({ unread: 1, readSeq: 2 });
    expect(tablet.sync.unread(chat)).toBe(1);

    await b.messaging.messages.markRead(chat, 3);
    await bobLive.unreadReaches(chat, 0);
    await tabletLive.unreadReaches(chat, 0);

    // Bob answering reads the conversation too, as on the server.
    await a.outbox.send(chat, plain('4')).result;
    await bobLive.unreadReaches(chat, 1);
    await b.outbox.send(chat, plain('ok')).result;
    await bobLive.unreadReaches(chat, 0);
  });

  it('a cold start with a tombstone among the unread still counts a later deletion exactly', async () => {
    const [alice, bob] = [await registerUser(t), await registerUser(t)];
    const [a, b] = [sdkFor(alice), sdkFor(bob)];
    const chat = await directChat(a, bob);
    for (const body of ['1', '2', '3']) await a.outbox.send(chat, plain(body)).result;
    await a.messaging.messages.delete(chat, 2);

    // The snapshot counts 1 and 3; only its list says 2 is not one of them.
    const bobLive = await live(b);
    expect(
      bobLive.snapshots[0]?.conversations.find((c) => c.conversation.id === chat),
    ).toMatchObject({ unread: 2, unreadSeqs: [1, 3] });
    expect(b.sync.unread(chat)).toBe(2);
    await a.messaging.messages.delete(chat, 1);
    await bobLive.unreadReaches(chat, 1);
    await a.messaging.messages.delete(chat, 3);
    await bobLive.unreadReaches(chat, 0);
  });

  it('a disappearing message goes at its time on a device whose stream is stopped, and from history', async () => {
    // The test server runs no expiry loop and nobody runs the jobs: only the SDK's own timer
    // can remove these.
    const [alice, bob] = [await registerUser(t), await registerUser(t)];
    const [a, b] = [sdkFor(alice), sdkFor(bob)];
    const chat = await directChat(a, bob);
    const bobLive = await live(b);
    await a.messaging.conversations.update(chat, { disappearSeconds: 1 });
    const sent = await a.outbox.send(chat, plain('gone in a second')).result;
    // Another device of Bob's reads it from history while its timer runs: it goes there too.
    const tablet = sdkFor(bob);
    const fromTablet = eventQueue<{ seq: number }>();
    tablet.expiry.onExpired((e) => fromTablet.push(e));
    const page = await tablet.messaging.messages.history(chat);
    expect(page.messages.map((m) => m.seq)).toEqual([sent.seq]);
    const [got] = await bobLive.messages(chat, 1);
    expect(got!.expiresAt).toBe(sent.expiresAt);
    await bobLive.unreadReaches(chat, 1);
    const expired = eventQueue<{ conversationId: string; seq: number; messageId: string }>();
    b.expiry.onExpired((e) => expired.push(e));
    await b.sync.stop(); // offline, as far as the server can tell

    expect(await expired.next(5_000)).toEqual({
      conversationId: chat,
      seq: sent.seq,
      messageId: sent.id,
    });
    expect(Date.now() + b.expiry.clockOffsetMs).toBeGreaterThanOrEqual(Date.parse(sent.expiresAt!));
    expect(b.sync.unread(chat)).toBe(0);

    expect(await fromTablet.next(5_000)).toMatchObject({ seq: sent.seq });
    // Past its timer the server shows it no more, whether or not its purge has run (this server
    // runs none).
    expect((await tablet.messaging.messages.history(chat)).messages).toEqual([]);
  });

  it('wrappers: groups, members, leaving, and typed errors through the outbox', async () => {
    const [alice, bob, carol] = [
      await registerUser(t),
      await registerUser(t),
      await registerUser(t),
    ];
    const [a, b] = [sdkFor(alice), sdkFor(bob)];
    for (const friend of [bob, carol]) {
      await a.people.contacts.request(friend.userId);
      await sdkFor(friend).people.contacts.request(alice.userId);
    }
    const group = await a.messaging.conversations.createGroup({
      title: 'Team',
      memberIds: [bob.userId],
    });
    expect(group).toMatchObject({ kind: 'group', title: 'Team', memberCount: 2, myRole: 'owner' });
    expect((await a.messaging.conversations.addMembers(group.id, [carol.userId])).memberCount).toBe(
      3,
    );
    expect((await b.messaging.conversations.members(group.id)).map((m) => m.userId).sort()).toEqual(
      [alice.userId, bob.userId, carol.userId].sort(),
    );
    expect((await b.messaging.conversations.list()).map((c) => c.id)).toContain(group.id);
    await a.messaging.conversations.removeMember(group.id, carol.userId);
    expect((await a.messaging.conversations.get(group.id)).memberCount).toBe(2);

    await b.messaging.conversations.leave(group.id);
    // Not a member any more: the send fails for good and the next one still goes out.
    const refused = b.outbox.send(group.id, plain('too late'));
    const direct = await directChat(b, alice);
    const fine = b.outbox.send(direct, plain('still here'));
    await expect(refused.result).rejects.toThrow();
    await fine.result;
    expect(b.outbox.pending()).toMatchObject([
      { clientMessageId: refused.clientMessageId, state: 'failed' },
    ]);
    expect(['FORBIDDEN', 'NOT_FOUND']).toContain(b.outbox.pending()[0]?.error?.code);
  });

  it('wrappers: channels, invites, roles, settings, edits, reactions, pins, deletions, typing', async () => {
    const [alice, bob] = [await registerUser(t), await registerUser(t)];
    const [a, b] = [sdkFor(alice), sdkFor(bob)];
    const channel = await a.messaging.conversations.createChannel({ title: 'News' });
    expect(channel).toMatchObject({ kind: 'channel', myRole: 'owner', memberCount: 1 });
    const invite = await a.messaging.invites.create(channel.id, { maxUses: 5 });
    expect((await a.messaging.invites.list(channel.id)).map((i) => i.code)).toEqual([invite.code]);
    expect(await b.messaging.invites.preview(invite.code)).toMatchObject({ title: 'News' });
    expect((await b.messaging.invites.join(invite.code)).myRole).toBe('member');
    await a.messaging.invites.revoke(invite.code);
    expect((await a.messaging.invites.list(channel.id)).map((i) => [i.uses, i.revoked])).toEqual([
      [1, true],
    ]);
    await expect(b.messaging.invites.preview(invite.code)).rejects.toThrow();

    const renamed = await a.messaging.conversations.update(channel.id, { title: 'Daily news' });
    expect(renamed.title).toBe('Daily news');
    // A channel member reads only; made an admin, posts.
    await expect(b.messaging.messages.typing(channel.id)).rejects.toThrow();
    await a.messaging.conversations.setRole(channel.id, bob.userId, 'admin');
    await b.messaging.messages.typing(channel.id);
    const first = await b.outbox.send(channel.id, plain('draft')).result;

    const named = { ...plain('final'), clientEditId: 'final-edit-1' };
    const edited = await b.messaging.messages.edit(channel.id, first.seq, named);
    expect([text(edited), edited.editedAt !== null]).toEqual(['final', true]);
    // The same edit id again (a retry): the message as it is, not edited a second time.
    await b.messaging.messages.edit(channel.id, first.seq, plain('in between'));
    const retried = await b.messaging.messages.edit(channel.id, first.seq, named);
    expect(text(retried)).toBe('in between');
    await b.messaging.messages.edit(channel.id, first.seq, plain('final'));
    await a.messaging.messages.react(channel.id, first.seq, '👍');
    await a.messaging.messages.pin(channel.id, first.seq);
    const [pinned] = await b.messaging.messages.pins(channel.id);
    expect([text(pinned!), pinned!.reactions]).toEqual([
      'final',
      [{ emoji: '👍', userIds: [alice.userId] }],
    ]);
    await a.messaging.messages.react(channel.id, first.seq, '👍', false);
    await a.messaging.messages.pin(channel.id, first.seq, false);
    expect(await b.messaging.messages.pins(channel.id)).toEqual([]);

    const second = await b.outbox.send(channel.id, plain('oops')).result;
    await a.messaging.messages.deleteForMe(channel.id, first.seq);
    await b.messaging.messages.delete(channel.id, second.seq);
    const seen = (await a.messaging.messages.history(channel.id)).messages;
    expect(seen.map((m) => [m.seq, m.ciphertext === null])).toEqual([[second.seq, true]]);

    await a.messaging.conversations.transferOwnership(channel.id, bob.userId);
    expect((await a.messaging.conversations.get(channel.id)).myRole).toBe('admin');
    await b.messaging.conversations.delete(channel.id);
    await expect(a.messaging.conversations.get(channel.id)).rejects.toThrow();
  });

  /** Signs `who` in on `app` with a password, as a user would. */
  async function signInOn(app: MvpClient, who: Account) {
    const res = await app.auth.login({
      identifier: who.username,
      password: PASSWORD,
      device: DEVICE,
    });
    expect(res.status).toBe('ok');
  }

  /** Alice and Bob, each a contact of Carol, and Carol's group with both (`shared`). */
  async function carolWithBoth() {
    const [alice, bob, carol] = [
      await registerUser(t),
      await registerUser(t),
      await registerUser(t),
    ];
    await befriend(t, carol, alice);
    await befriend(t, carol, bob);
    const c = sdkFor(carol);
    const group = await c.messaging.conversations.createGroup({
      title: 'Both of them',
      memberIds: [alice.userId, bob.userId],
    });
    return { alice, bob, c, shared: group.id };
  }

  it('an account switch on one client: the next account starts from its own state, not the last one', async () => {
    const { alice, bob, c, shared } = await carolWithBoth();
    const [alicesOnly, bobsOnly] = [await directChat(c, alice), await directChat(c, bob)];
    for (const body of ['1', '2', '3']) await c.outbox.send(shared, plain(body)).result;
    for (const body of ['a', 'b']) await c.outbox.send(alicesOnly, plain(body)).result;
    // Bob's stream grows past where Alice's will be: her cursor would be a place in his.
    for (let i = 0; i < 12; i++) await c.outbox.send(bobsOnly, plain(`for bob ${i}`)).result;

    // One app on one device, one token store and one cursor store, signed in as Alice.
    const cursorStore = createMemoryCursorStore();
    const app = t.newClient({ WebSocket, tokenStore: createMemoryTokenStore(), cursorStore });
    const signIn = (who: Account) => signInOn(app, who);
    await signIn(alice);
    const seen = await live(app);
    expect([app.sync.unread(shared), app.sync.unread(alicesOnly)]).toEqual([3, 2]);
    // What Alice hides is gone for her only.
    await app.messaging.messages.deleteForMe(shared, 3);
    await seen.unreadReaches(shared, 2);

    await app.auth.logout();
    await signIn(bob);
    const bobsHead = (await app.api.sync.snapshot.query()).cursor;
    expect(Number((await keptCursor(cursorStore))?.id)).toBeLessThan(Number(bobsHead));
    await app.sync.start();
    expect(
      [shared, alicesOnly, bobsOnly]
        .map((id) => app.sync.unread(id))
        .concat(app.sync.unreadTotal()),
    ).toEqual([3, 0, 12, 15]);
    // Bob's app starts cold from his snapshot, not from a place in his stream named by hers.
    expect(seen.snapshots.map((s) => s.conversations.map((e) => e.conversation.id).sort())).toEqual(
      [[shared, alicesOnly].sort(), [shared, bobsOnly].sort()],
    );

    // Live from here on, as Bob: Carol's message counts, Alice's chat is not his, his own reads.
    await c.outbox.send(shared, plain('4')).result;
    await seen.unreadReaches(shared, 4);
    await c.outbox.send(alicesOnly, plain('c')).result;
    await app.outbox.send(shared, plain('from bob')).result;
    await seen.unreadReaches(shared, 0);
    expect([app.sync.unread(alicesOnly), app.sync.unreadTotal()]).toEqual([0, 12]);
  });

  it('an app restarted as another account, with the same cursor store, starts cold: her cursor is no place in his stream', async () => {
    const { alice, bob, c, shared } = await carolWithBoth();
    const bobsOnly = await directChat(c, bob);
    // Bob's stream grows past where Alice's will be.
    for (let i = 0; i < 6; i++) await c.outbox.send(bobsOnly, plain(`for bob ${i}`)).result;

    // One device, one cursor store: Alice uses the app, which is then closed.
    const cursorStore = createMemoryCursorStore();
    const hers = sdkFor(alice, { cursorStore });
    const before = await live(hers);
    await c.outbox.send(shared, plain('to both')).result;
    expect((await before.messages(shared, 1)).map(text)).toEqual(['to both']);
    await hers.close();
    const kept = await keptCursor(cursorStore);
    expect(kept?.userId).toBe(alice.userId);

    // The app starts again, signed in as Bob.
    const his = sdkFor(bob, { cursorStore });
    const bobsHead = (await his.api.sync.snapshot.query()).cursor;
    expect(Number(kept?.id)).toBeLessThan(Number(bobsHead));
    const after = await live(his);
    expect(
      after.snapshots.map((s) => s.conversations.map((e) => e.conversation.id).sort()),
    ).toEqual([[shared, bobsOnly].sort()]);
    expect([his.sync.unread(shared), his.sync.unread(bobsOnly)]).toEqual([1, 6]);
    expect(await keptCursor(cursorStore)).toEqual({ userId: bob.userId, id: bobsHead });

    await c.outbox.send(shared, plain('live')).result;
    expect((await after.messages(shared, 1)).map(text)).toEqual(['live']);
  });

  it("an account switch on one client: the last account's queued sends wait for it, never go out as the next", async () => {
    const { alice, bob, c, shared } = await carolWithBoth();

    // One app on one device, one token store and one outbox store; sends fail while offline.
    let offline = false;
    const flakyFetch: typeof fetch = async (input, init) => {
      const url = input instanceof Request ? input.url : String(input);
      if (offline && url.includes('messages.send')) throw new TypeError('fetch failed: offline');
      return fetch(input, init);
    };
    const app = t.newClient({
      WebSocket,
      tokenStore: createMemoryTokenStore(),
      outboxStore: createMemoryOutboxStore(),
      fetch: flakyFetch,
    });
    const signIn = (who: Account) => signInOn(app, who);
    await signIn(alice);
    offline = true;
    const tried = new Promise<void>((resolve) =>
      app.outbox.onChange((item) => item.error?.code === 'NETWORK' && resolve()),
    );
    const hers = app.outbox.send(shared, plain('queued by alice'));
    await tried;
    expect(app.outbox.pending().map((i) => i.clientMessageId)).toEqual([hers.clientMessageId]);

    await app.auth.logout();
    await signIn(bob);
    offline = false;
    app.outbox.retryNow();
    expect(app.outbox.pending()).toEqual([]);
    // Sends of one conversation go out in order: hers, queued first, would have gone before his.
    await app.outbox.send(shared, plain('from bob')).result;
    await app.outbox.send(shared, plain('bob again')).result;
    const asSeen = async () =>
      (await c.messaging.messages.history(shared)).messages
        .map((m) => [m.senderId, text(m)])
        .reverse();
    const onlyBob = [
      [bob.userId, 'from bob'],
      [bob.userId, 'bob again'],
    ];
    expect((await asSeen()).slice(-2)).toEqual(onlyBob);
    expect((await asSeen()).filter(([, body]) => body === 'queued by alice')).toEqual([]);
    expect(app.outbox.pending()).toEqual([]);

    // Alice signs in again on this client: her message goes out now, as her.
    await app.auth.logout();
    await signIn(alice);
    const message = await hers.result;
    expect([message.senderId, message.clientMessageId]).toEqual([
      alice.userId,
      hers.clientMessageId,
    ]);
    expect((await asSeen()).slice(-3)).toEqual([...onlyBob, [alice.userId, 'queued by alice']]);
  });

  it("editing or pinning someone else's message through the wrappers: a typed FORBIDDEN, nothing changes", async () => {
    const [alice, bob] = [await registerUser(t), await registerUser(t)];
    await befriend(t, alice, bob);
    const [a, b] = [sdkFor(alice), sdkFor(bob)];
    const group = await a.messaging.conversations.createGroup({
      title: 'Team',
      memberIds: [bob.userId],
    });
    const hers = await a.outbox.send(group.id, plain('as alice wrote it')).result;
    const his = await b.outbox.send(group.id, plain('as bob wrote it')).result;
    const { cursor } = await a.api.sync.snapshot.query();
    const refusal = (p: Promise<unknown>) =>
      p.then(
        () => new Error('accepted'),
        (e: unknown) => e,
      );

    // A member edits or pins the owner's message; the owner edits the member's (admins delete
    // others' messages, but nobody edits them).
    const refused = [
      await refusal(b.messaging.messages.edit(group.id, hers.seq, plain('forged'))),
      await refusal(b.messaging.messages.pin(group.id, hers.seq)),
      await refusal(a.messaging.messages.edit(group.id, his.seq, plain('forged'))),
    ];
    for (const error of refused) {
      expect(isMvpError(error)).toBe(true);
      expect(errorCodeOf(error)).toBe('FORBIDDEN');
      expect(isMvpError(error) && error.data).toMatchObject({
        appCode: 'FORBIDDEN',
        httpStatus: 403,
      });
    }

    const history = await b.messaging.messages.history(group.id);
    expect(history.messages.map((m) => [m.seq, text(m), m.editedAt])).toEqual([
      [his.seq, 'as bob wrote it', null],
      [hers.seq, 'as alice wrote it', null],
    ]);
    expect(await a.messaging.messages.pins(group.id)).toEqual([]);
    expect((await a.api.sync.poll.query({ after: cursor })).events).toEqual([]);
    // The same calls by whoever may make them do go through (and would show above).
    await a.messaging.messages.pin(group.id, his.seq);
    expect((await b.messaging.messages.pins(group.id)).map((m) => m.seq)).toEqual([his.seq]);
    expect(
      (await a.api.sync.poll.query({ after: cursor })).events.map((e) => e.event.type),
    ).toEqual(['pin']);
  });
});
