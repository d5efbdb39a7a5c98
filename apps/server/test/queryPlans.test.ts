import { CompiledQuery, createQueryId, type KyselyPlugin, type RootOperationNode } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appRouter, createCallerFactory, createContext } from '@mvp/api';
import { befriend, clientWithToken, registerUser, type Account } from './helpers/accounts';
import { backendLabel, testDatabaseUrl } from './helpers/env';
import { sendText } from './helpers/messaging';
import { startServer, type TestServer } from './helpers/startServer';
import { storedReceipts } from './helpers/sync';

// The statements rewritten for their plans (the snapshot's unread counts, a receipt's senders),
// through the server on both backends; their SQLite plans are asserted next to them in
// packages/api (unreadCounts.test.ts, sendersIn.test.ts), the unread count's on both below.
describe(`unread counts and receipt senders (${backendLabel})`, () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startServer();
  });
  afterAll(() => t.stop());

  const api = (a: Account) => clientWithToken(t, a.accessToken).api;
  const group = async (owner: Account, members: Account[]) => {
    for (const member of members) await befriend(t, owner, member);
    return api(owner).conversations.create.mutate({
      kind: 'group',
      title: 'g',
      memberIds: members.map((m) => m.userId),
    });
  };
  const receiptsTo = (a: Account) => storedReceipts(t, a.userId);

  it('counts each conversation from its own positions, one snapshot for all', async () => {
    const [bob, alice, carol] = [
      await registerUser(t),
      await registerUser(t),
      await registerUser(t),
    ];
    const direct = async (a: Account) =>
      (await api(a).conversations.create.mutate({ kind: 'direct', userId: bob.userId })).id;
    // Read to 2; 4 deleted for everyone, 5 deleted for Bob.
    const withAlice = await direct(alice);
    for (let i = 1; i <= 6; i++) await sendText(t, alice, withAlice, `a${i}`);
    await api(bob).messages.markRead.mutate({ conversationId: withAlice, seq: 2 });
    await api(alice).messages.delete.mutate({ conversationId: withAlice, seq: 4 });
    await api(bob).messages.deleteForMe.mutate({ conversationId: withAlice, seq: 5 });
    // All read.
    const withCarol = await direct(carol);
    for (let i = 1; i <= 3; i++) await sendText(t, carol, withCarol, `c${i}`);
    await api(bob).messages.markRead.mutate({ conversationId: withCarol, seq: 3 });
    // Joined after 4 messages, none read since; Bob's own message does not count.
    const joinedLate = await group(carol, [alice]);
    for (let i = 1; i <= 4; i++) await sendText(t, carol, joinedLate.id, `before ${i}`);
    await befriend(t, carol, bob);
    await api(carol).conversations.addMembers.mutate({ id: joinedLate.id, userIds: [bob.userId] });
    const joined = (await api(bob).sync.snapshot.query()).conversations.find(
      (c) => c.conversation.id === joinedLate.id,
    )!.conversation.lastSeq;
    await sendText(t, alice, joinedLate.id, 'after');
    await sendText(t, bob, joinedLate.id, 'mine');
    await sendText(t, carol, joinedLate.id, 'after mine');
    // Nothing read, nothing sent.
    const untouched = await group(alice, [bob]);
    for (let i = 1; i <= 2; i++) await sendText(t, alice, untouched.id, `u${i}`);

    const unread = Object.fromEntries(
      (await api(bob).sync.snapshot.query()).conversations.map((c) => [
        c.conversation.id,
        { unread: c.unread, unreadSeqs: c.unreadSeqs },
      ]),
    );
    expect(unread).toEqual({
      [withAlice]: { unread: 2, unreadSeqs: [3, 6] },
      [withCarol]: { unread: 0, unreadSeqs: [] },
      // Bob's message reads the conversation up to it for him.
      [joinedLate.id]: { unread: 1, unreadSeqs: [joined + 3] },
      [untouched.id]: { unread: 2, unreadSeqs: [1, 2] },
    });
  });

  it('a mark moving delivered and read by different amounts tells exactly the senders it passes', async () => {
    const [owner, ann, ben, cat] = [
      await registerUser(t),
      await registerUser(t),
      await registerUser(t),
      await registerUser(t),
    ];
    const room = await group(owner, [ann, ben, cat]);
    await sendText(t, ann, room.id, '1');
    await sendText(t, owner, room.id, '2');
    await sendText(t, ann, room.id, '3');
    await sendText(t, cat, room.id, '4');

    await api(ben).messages.markDelivered.mutate({ conversationId: room.id, seq: 2 });
    // Delivered moves over (2, 3], read over (0, 3]: the owner's seq 2 is in the read range only.
    await api(ben).messages.markRead.mutate({ conversationId: room.id, seq: 3 });

    const told = [
      { deliveredSeq: 2, readSeq: 0 },
      { deliveredSeq: 3, readSeq: 3 },
    ];
    expect(await receiptsTo(owner)).toMatchObject(told);
    expect(await receiptsTo(ann)).toMatchObject(told);
    // Cat's message is past both ranges.
    expect(await receiptsTo(cat)).toEqual([]);
  });
});

// The plan of the snapshot's unread count as the server runs it, on this run's database: a range
// of the messages' primary key (conversation_id, seq). On MariaDB the count joined to the
// memberships was a `ref` on conversation_id alone (every message of every conversation I am
// in); an OR of per-conversation bounds leaves no `ref` to take.
describe(`the unread count's plan (${backendLabel})`, () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startServer();
  });
  afterAll(() => t.stop());

  it('reads a primary key range of messages', async () => {
    const [alice, bob] = [await registerUser(t), await registerUser(t)];
    const api = clientWithToken(t, alice.accessToken).api;
    for (const other of [bob, await registerUser(t)]) {
      const chat = await api.conversations.create.mutate({ kind: 'direct', userId: other.userId });
      for (let i = 1; i <= 12; i++) await sendText(t, other, chat.id, `m${i}`);
      await api.messages.markRead.mutate({ conversationId: chat.id, seq: 10 });
    }
    const { ports } = t.server.infra;
    // The server's statements on its own database handle, kept to be explained.
    const statements: RootOperationNode[] = [];
    const keeping: KyselyPlugin = {
      transformQuery(args) {
        statements.push(args.node);
        return args.node;
      },
      transformResult: async (args) => args.result,
    };
    const ctx = await createContext(
      { ...ports, db: ports.db.withPlugin(keeping) },
      t.server.settings,
      { requestId: 'plans', ip: '127.0.0.1', transport: 'http', token: alice.accessToken },
    );
    const snapshot = await createCallerFactory(appRouter)(ctx).sync.snapshot();
    expect(snapshot.conversations.map((c) => c.unread)).toEqual([2, 2]);

    const executor = ports.db.getExecutor();
    const reads = statements
      .map((node) => executor.compileQuery(node, createQueryId()))
      .filter((q) => /messages.? as .?msg/.test(q.sql));
    expect(reads.length).toBeGreaterThan(0);
    const mysql = testDatabaseUrl.startsWith('mysql');
    for (const query of reads) {
      const plan = await ports.db.executeQuery<{ table: string; detail: string }>(
        CompiledQuery.raw(`${mysql ? 'explain' : 'explain query plan'} ${query.sql}`, [
          ...query.parameters,
        ]),
      );
      if (mysql)
        expect(plan.rows.find((row) => row.table === 'msg')).toMatchObject({
          type: 'range',
          key: 'PRIMARY',
        });
      else {
        const details = plan.rows.map((row) => row.detail).join('\n');
        expect(details).toMatch(
          /SEARCH msg USING INDEX \w+ \(conversation_id=\? AND seq>\? AND seq<\?\)/,
        );
        expect(details).not.toMatch(/SCAN msg/);
      }
    }
  });
});
