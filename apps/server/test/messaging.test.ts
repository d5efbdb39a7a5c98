import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { errorCodeOf } from '@mvp/sdk';
import { befriend, clientWithToken, registerUser, type Account } from './helpers/accounts';
import { b64, newClientMessageId, sendText } from './helpers/messaging';
import { backendLabel } from './helpers/env';
import { defaultConfig } from '../src/index';
import { startServer, type TestServer } from './helpers/startServer';
import { openStream } from './helpers/sync';
import { codeOf } from './helpers/errors';

const cid = newClientMessageId;
describe(`conversations, messages and the sync stream (${backendLabel})`, () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startServer({
      messaging: { ...defaultConfig().messaging, maxCiphertextBytes: 4096, groupMemberCap: 5 },
    });
  });
  afterAll(() => t.stop());

  const api = (a: Account) => clientWithToken(t, a.accessToken).api;
  const send = (a: Account, conversationId: string, text: string, clientMessageId?: string) =>
    sendText(t, a, conversationId, text, clientMessageId);

  it('a direct conversation: both streams hear it open and every message, in seq order', async () => {
    const [alice, bob] = [await registerUser(t), await registerUser(t)];
    const aliceStream = await openStream(t, alice.accessToken);
    const bobStream = await openStream(t, bob.accessToken);

    const chat = await api(alice).conversations.create.mutate({
      kind: 'direct',
      userId: bob.userId,
    });
    expect(chat).toMatchObject({ kind: 'direct', peerId: bob.userId, memberCount: 2, lastSeq: 0 });
    expect((await bobStream.next('conversation.joined')).event.conversation).toMatchObject({
      id: chat.id,
      peerId: alice.userId,
    });
    // The same pair gets the same conversation, whoever asks.
    expect(
      (await api(bob).conversations.create.mutate({ kind: 'direct', userId: alice.userId })).id,
    ).toBe(chat.id);

    const first = await send(alice, chat.id, 'hello', 'client-id-0001');
    const again = await send(alice, chat.id, 'hello', 'client-id-0001');
    expect(again).toEqual(first);
    await send(bob, chat.id, 'hi alice');
    const got = [
      (await bobStream.next('message.new')).event.message,
      (await bobStream.next('message.new')).event.message,
    ];
    expect(got.map((m) => [m.seq, Buffer.from(m.ciphertext!, 'base64').toString()])).toEqual([
      [1, 'hello'],
      [2, 'hi alice'],
    ]);
    expect((await aliceStream.next('message.new')).event.message.id).toBe(first.id);

    const page = await api(bob).messages.history.query({ conversationId: chat.id });
    expect(page.messages.map((m) => m.seq)).toEqual([2, 1]);
    expect(page.more).toBe(false);
    await aliceStream.close();
    await bobStream.close();
  });

  it('resumes exactly after the last event id, and a lost cursor gets resync', async () => {
    const [alice, bob] = [await registerUser(t), await registerUser(t)];
    const chat = await api(alice).conversations.create.mutate({
      kind: 'direct',
      userId: bob.userId,
    });
    const snap = await api(bob).sync.snapshot.query();
    let bobStream = await openStream(t, bob.accessToken, snap.cursor);
    await send(alice, chat.id, 'one');
    const seen = await bobStream.next('message.new');
    await bobStream.close();

    for (const text of ['two', 'three', 'four']) await send(alice, chat.id, text);
    bobStream = await openStream(t, bob.accessToken, seen.id);
    const resumed = [];
    for (let i = 0; i < 3; i++)
      resumed.push((await bobStream.next('message.new')).event.message.seq);
    expect(resumed).toEqual([2, 3, 4]);
    expect(bobStream.events.size).toBe(0);
    await bobStream.close();

    const future = await openStream(t, bob.accessToken, '999999999');
    expect((await future.events.next()).event).toEqual({ type: 'resync' });
    await future.close();
    const malformed = await openStream(t, bob.accessToken, 'not-a-cursor').catch((e: unknown) => e);
    expect(errorCodeOf(malformed)).toBe('BAD_REQUEST');
  });

  it('snapshot: last message, unread counts and read receipts', async () => {
    const [alice, bob] = [await registerUser(t), await registerUser(t)];
    const chat = await api(alice).conversations.create.mutate({
      kind: 'direct',
      userId: bob.userId,
    });
    await send(alice, chat.id, 'a');
    const last = await send(alice, chat.id, 'b');
    const snap = await api(bob).sync.snapshot.query();
    const entry = snap.conversations.find((c) => c.conversation.id === chat.id)!;
    expect(entry).toMatchObject({ unread: 2, readSeq: 0, lastMessage: { id: last.id } });
    expect(
      (await api(alice).sync.snapshot.query()).conversations.find(
        (c) => c.conversation.id === chat.id,
      )?.unread,
    ).toBe(0);

    const aliceStream = await openStream(t, alice.accessToken);
    expect(await api(bob).messages.markRead.mutate({ conversationId: chat.id, seq: 2 })).toEqual({
      deliveredSeq: 2,
      readSeq: 2,
    });
    expect((await aliceStream.next('receipt')).event).toMatchObject({
      userId: bob.userId,
      readSeq: 2,
    });
    // Never backwards.
    expect(await api(bob).messages.markRead.mutate({ conversationId: chat.id, seq: 1 })).toEqual({
      deliveredSeq: 2,
      readSeq: 2,
    });
    expect(
      (await api(bob).sync.snapshot.query()).conversations.find(
        (c) => c.conversation.id === chat.id,
      )?.unread,
    ).toBe(0);
    expect(
      await codeOf(api(bob).messages.markRead.mutate({ conversationId: chat.id, seq: 3 })),
    ).toBe('BAD_REQUEST');
    await aliceStream.close();
  });

  it('outsiders cannot see, read or post; bad input is refused and nothing is written', async () => {
    const [alice, bob, eve] = [await registerUser(t), await registerUser(t), await registerUser(t)];
    const chat = await api(alice).conversations.create.mutate({
      kind: 'direct',
      userId: bob.userId,
    });
    await send(alice, chat.id, 'private');

    expect(await codeOf(api(eve).conversations.get.query({ id: chat.id }))).toBe('NOT_FOUND');
    expect(await codeOf(api(eve).messages.history.query({ conversationId: chat.id }))).toBe(
      'NOT_FOUND',
    );
    expect(await codeOf(send(eve, chat.id, 'let me in'))).toBe('NOT_FOUND');
    expect(await codeOf(api(eve).conversations.members.query({ id: chat.id }))).toBe('NOT_FOUND');
    expect(await codeOf(api(alice).conversations.get.query({ id: 'nope' }))).toBe('BAD_REQUEST');
    expect(await codeOf(send(alice, chat.id, 'x'.repeat(4097)))).toBe('PAYLOAD_TOO_LARGE');
    expect(
      await codeOf(
        api(alice).messages.send.mutate({
          conversationId: chat.id,
          clientMessageId: cid(),
          contentType: 'text/plain',
          ciphertext: 'not base64!',
        }),
      ),
    ).toBe('BAD_REQUEST');
    expect(
      await codeOf(
        api(alice).messages.history.query({ conversationId: chat.id, before: 1, after: 1 }),
      ),
    ).toBe('BAD_REQUEST');
    expect((await api(alice).conversations.get.query({ id: chat.id })).lastSeq).toBe(1);

    // Blocks with someone outside this conversation, either way, change nothing here, even when
    // that someone shares another conversation with us.
    await api(eve).conversations.create.mutate({ kind: 'direct', userId: bob.userId });
    await api(eve).blocks.add.mutate({ userId: alice.userId });
    await api(alice).blocks.add.mutate({ userId: eve.userId });
    await api(bob).blocks.add.mutate({ userId: eve.userId });
    await send(alice, chat.id, 'eve is not in this');
    await send(bob, chat.id, 'neither here');
    expect((await api(alice).conversations.get.query({ id: chat.id })).lastSeq).toBe(3);

    await api(bob).blocks.add.mutate({ userId: alice.userId });
    expect(await codeOf(send(alice, chat.id, 'still there?'))).toBe('FORBIDDEN');
    expect(await codeOf(send(bob, chat.id, 'blocked you'))).toBe('FORBIDDEN');
    expect(
      await codeOf(api(alice).conversations.create.mutate({ kind: 'direct', userId: bob.userId })),
    ).toBe('FORBIDDEN');
    expect((await api(alice).conversations.get.query({ id: chat.id })).lastSeq).toBe(3);
  });

  it('groups: contacts only, admins manage, a removed member hears nothing after', async () => {
    const [owner, ann, ben, stranger] = [
      await registerUser(t),
      await registerUser(t),
      await registerUser(t),
      await registerUser(t),
    ];
    await befriend(t, owner, ann);
    await befriend(t, owner, ben);
    expect(
      await codeOf(
        api(owner).conversations.create.mutate({
          kind: 'group',
          title: 'G',
          memberIds: [stranger.userId],
        }),
      ),
    ).toBe('FORBIDDEN');
    const group = await api(owner).conversations.create.mutate({
      kind: 'group',
      title: 'Team',
      memberIds: [ann.userId],
    });
    expect(group).toMatchObject({ kind: 'group', title: 'Team', memberCount: 2, myRole: 'owner' });
    await send(owner, group.id, 'before ben');

    const annStream = await openStream(t, ann.accessToken);
    expect(
      await codeOf(
        api(ann).conversations.addMembers.mutate({ id: group.id, userIds: [ben.userId] }),
      ),
    ).toBe('FORBIDDEN');
    await api(owner).conversations.addMembers.mutate({ id: group.id, userIds: [ben.userId] });
    expect((await annStream.next('member.joined')).event.userId).toBe(ben.userId);
    // Ben sees what is said from now on, not before.
    expect((await api(ben).messages.history.query({ conversationId: group.id })).messages).toEqual(
      [],
    );

    const benStream = await openStream(t, ben.accessToken);
    await api(owner).conversations.removeMember.mutate({ id: group.id, userId: ben.userId });
    expect((await benStream.next('conversation.left')).event.reason).toBe('removed');
    await send(owner, group.id, 'after ben');
    expect((await annStream.next('message.new')).event.message.seq).toBe(2);
    expect(await codeOf(api(ben).messages.history.query({ conversationId: group.id }))).toBe(
      'NOT_FOUND',
    );
    expect(benStream.events.size).toBe(0);

    expect(await codeOf(api(owner).conversations.leave.mutate({ id: group.id }))).toBe('CONFLICT');
    const lastWords = await send(ann, group.id, 'bye', 'client-id-bye');
    await api(ann).conversations.leave.mutate({ id: group.id });
    expect(await codeOf(send(ann, group.id, 'gone'))).toBe('NOT_FOUND');
    // A retry of what got through before leaving still answers that message, and stores nothing.
    expect(await send(ann, group.id, 'bye', 'client-id-bye')).toEqual(lastWords);
    expect((await api(owner).conversations.get.query({ id: group.id })).lastSeq).toBe(
      lastWords.seq,
    );
    await annStream.close();
    await benStream.close();
  });

  it('no loss, no duplicate: concurrent senders, receivers that keep reconnecting', async () => {
    const [alice, bob, carol] = [
      await registerUser(t),
      await registerUser(t),
      await registerUser(t),
    ];
    await befriend(t, alice, bob);
    await befriend(t, alice, carol);
    const group = await api(alice).conversations.create.mutate({
      kind: 'group',
      title: 'Load',
      memberIds: [bob.userId, carol.userId],
    });
    const direct = await api(alice).conversations.create.mutate({
      kind: 'direct',
      userId: carol.userId,
    });
    const perSender = 12;
    // Cursors taken after the conversations exist and before anyone sends: only messages follow.
    const receivers = [bob, carol];
    const cursors = await Promise.all(
      receivers.map(async (r) => (await api(r).sync.snapshot.query()).cursor),
    );
    const plan: [Account, string][] = [
      [alice, group.id],
      [bob, group.id],
      [carol, group.id],
      [alice, direct.id],
      [carol, direct.id],
    ];
    const sending = Promise.all(
      plan.map(async ([who, conversationId]) => {
        for (let i = 0; i < perSender; i++)
          await send(who, conversationId, `${who.userId}:${conversationId}:${i}`);
      }),
    );
    const expected = new Map([
      [bob.userId, plan.filter(([, c]) => c === group.id).length * perSender],
      [carol.userId, plan.length * perSender],
    ]);

    // Each receiver drops its socket after a few events (often while its backlog is still being
    // read) and resumes from the last id it saw.
    const received = await Promise.all(
      receivers.map(async (who, index) => {
        const got: { conversationId: string; seq: number; text: string }[] = [];
        let lastId: string | null = cursors[index]!;
        const total = expected.get(who.userId)!;
        while (got.length < total) {
          const stream = await openStream(t, who.accessToken, lastId);
          const take = 1 + Math.floor(Math.random() * 6);
          for (let i = 0; i < take && got.length < total; i++) {
            const { id, event } = await stream.next('message.new', 10_000);
            const text = Buffer.from(event.message.ciphertext!, 'base64').toString();
            got.push({
              conversationId: event.message.conversationId,
              seq: event.message.seq,
              text,
            });
            lastId = id;
          }
          await stream.close();
        }
        return got;
      }),
    );
    await sending;

    for (const [index, who] of receivers.entries()) {
      const got = received[index]!;
      for (const conversation of who === bob ? [group] : [group, direct]) {
        const mine = got.filter((m) => m.conversationId === conversation.id);
        const senders = plan.filter(([, c]) => c === conversation.id).length;
        // Every message of the conversation, each once, in seq order.
        expect(mine.map((m) => m.seq)).toEqual(
          Array.from({ length: senders * perSender }, (_, i) => i + 1),
        );
        const texts = plan
          .filter(([, c]) => c === conversation.id)
          .flatMap(([w]) =>
            Array.from({ length: perSender }, (_, i) => `${w.userId}:${conversation.id}:${i}`),
          );
        expect(mine.map((m) => m.text).sort()).toEqual(texts.sort());
      }
    }
  });

  it('history pages both ways; replies and forwards are kept; unknown conversations are not found', async () => {
    const [alice, bob] = [await registerUser(t), await registerUser(t)];
    const chat = await api(alice).conversations.create.mutate({
      kind: 'direct',
      userId: bob.userId,
    });
    for (let i = 1; i <= 5; i++) await send(alice, chat.id, `m${i}`);
    const reply = await api(bob).messages.send.mutate({
      conversationId: chat.id,
      clientMessageId: cid(),
      contentType: 'text/plain',
      ciphertext: b64('re: m2'),
      replyToSeq: 2,
      forwarded: true,
    });
    expect(reply).toMatchObject({ seq: 6, replyToSeq: 2, forwarded: true });
    const history = (input: { before?: number; after?: number; limit: number }) =>
      api(bob).messages.history.query({ conversationId: chat.id, ...input });
    const newest = await history({ limit: 2 });
    expect([newest.messages.map((m) => m.seq), newest.more]).toEqual([[6, 5], true]);
    const older = await history({ before: 5, limit: 3 });
    expect([older.messages.map((m) => m.seq), older.more]).toEqual([[4, 3, 2], true]);
    const oldest = await history({ before: 2, limit: 3 });
    expect([oldest.messages.map((m) => m.seq), oldest.more]).toEqual([[1], false]);
    const forward = await history({ after: 3, limit: 2 });
    expect([forward.messages.map((m) => m.seq), forward.more]).toEqual([[4, 5], true]);

    expect(
      await codeOf(
        api(bob).messages.send.mutate({
          conversationId: chat.id,
          clientMessageId: cid(),
          contentType: 'text/plain',
          ciphertext: b64('to the future'),
          replyToSeq: 99,
        }),
      ),
    ).toBe('BAD_REQUEST');
    const unknown = '0190d4a2-0000-7000-8000-000000000000';
    expect(await codeOf(api(bob).conversations.get.query({ id: unknown }))).toBe('NOT_FOUND');
    expect(await codeOf(send(bob, unknown, 'anyone?'))).toBe('NOT_FOUND');
  });
});

describe(`the per-account send budget (${backendLabel})`, () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startServer({
      messaging: { ...defaultConfig().messaging, sendLimit: { points: 3, durationSeconds: 60 } },
    });
  });
  afterAll(() => t.stop());

  it('refuses the send over budget with the wait, and stores nothing', async () => {
    const [alice, bob] = [await registerUser(t), await registerUser(t)];
    const api = clientWithToken(t, alice.accessToken).api;
    const chat = await api.conversations.create.mutate({ kind: 'direct', userId: bob.userId });
    const send = () =>
      api.messages.send.mutate({
        conversationId: chat.id,
        clientMessageId: cid(),
        contentType: 'text/plain',
        ciphertext: b64('x'),
      });
    for (let i = 0; i < 3; i++) await send();
    const refused = await send().catch((e: unknown) => e);
    expect(errorCodeOf(refused)).toBe('TOO_MANY_REQUESTS');
    expect((refused as { data?: { retryAfterMs?: number } }).data?.retryAfterMs).toBeGreaterThan(0);
    expect((await api.conversations.get.query({ id: chat.id })).lastSeq).toBe(3);
  });
});

describe(`appends to many streams at once (${backendLabel})`, () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startServer();
  });
  afterAll(() => t.stop());

  // appendEvents compiles its statements once per list length up to 16 users or rows and builds
  // longer lists per call: a group of 20 takes the second way, every smaller test the first.
  it('a group of 20: every member hears it open and change, under consecutive ids', async () => {
    const owner = await registerUser(t);
    const others: Account[] = [];
    for (let i = 0; i < 19; i++) {
      const other = await registerUser(t);
      await befriend(t, owner, other);
      others.push(other);
    }
    const api = (a: Account) => clientWithToken(t, a.accessToken).api;
    const group = await api(owner).conversations.create.mutate({
      kind: 'group',
      title: 'Twenty',
      memberIds: others.map((o) => o.userId),
    });
    await api(owner).conversations.update.mutate({ id: group.id, title: 'Twenty, renamed' });

    for (const member of [owner, ...others]) {
      const { events } = await api(member).sync.poll.query({ after: '0', limit: 500 });
      const ours = events.filter(
        ({ event }) =>
          ('conversation' in event && event.conversation.id === group.id) ||
          ('conversationId' in event && event.conversationId === group.id),
      );
      expect(ours.map(({ event }) => event.type)).toEqual([
        'conversation.joined',
        'conversation.updated',
      ]);
      expect(Number(ours[1]!.id)).toBe(Number(ours[0]!.id) + 1);
    }
  });
});
