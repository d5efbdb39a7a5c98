import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { befriend, clientWithToken, registerUser, type Account } from './helpers/accounts';
import { backendLabel } from './helpers/env';
import { sendText } from './helpers/messaging';
import { startServer, type TestServer } from './helpers/startServer';

describe(`unread counts in the snapshot (${backendLabel})`, () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startServer();
  });
  afterAll(() => t.stop());

  const api = (a: Account) => clientWithToken(t, a.accessToken).api;
  const entryOf = async (a: Account, conversationId: string) =>
    (await api(a).sync.snapshot.query()).conversations.find(
      (c) => c.conversation.id === conversationId,
    );
  const unreadOf = async (a: Account, conversationId: string) =>
    (await entryOf(a, conversationId))?.unread;
  /** The seqs listed: every count below 100 must list exactly what it counts. */
  const listedOf = async (a: Account, conversationId: string) => {
    const entry = await entryOf(a, conversationId);
    if (entry?.unreadSeqs) expect(entry.unreadSeqs).toHaveLength(entry.unread);
    return entry?.unreadSeqs;
  };

  it('leaves out messages I deleted for me, as the SDK does, and only mine', async () => {
    const [alice, bob] = [await registerUser(t), await registerUser(t)];
    const chat = await api(alice).conversations.create.mutate({
      kind: 'direct',
      userId: bob.userId,
    });
    for (const text of ['one', 'two', 'three', 'four']) await sendText(t, alice, chat.id, text);
    expect(await unreadOf(bob, chat.id)).toBe(4);
    expect(await listedOf(bob, chat.id)).toEqual([1, 2, 3, 4]);

    await api(bob).messages.deleteForMe.mutate({ conversationId: chat.id, seq: 2 });
    expect(await unreadOf(bob, chat.id)).toBe(3);
    expect(await listedOf(bob, chat.id)).toEqual([1, 3, 4]);
    // Hidden and then deleted for everyone: gone once, not twice.
    await api(bob).messages.deleteForMe.mutate({ conversationId: chat.id, seq: 3 });
    await api(alice).messages.delete.mutate({ conversationId: chat.id, seq: 3 });
    expect(await unreadOf(bob, chat.id)).toBe(2);
    expect(await listedOf(bob, chat.id)).toEqual([1, 4]);

    // Alice hiding a message of hers changes nothing for Bob; her own count stays 0.
    await api(alice).messages.deleteForMe.mutate({ conversationId: chat.id, seq: 4 });
    expect(await unreadOf(bob, chat.id)).toBe(2);
    expect(await unreadOf(alice, chat.id)).toBe(0);
    expect(await listedOf(alice, chat.id)).toEqual([]);

    // What Bob hid here does not hide the same seq of another conversation.
    const carol = await registerUser(t);
    const other = await api(carol).conversations.create.mutate({
      kind: 'direct',
      userId: bob.userId,
    });
    await sendText(t, carol, other.id, 'from carol');
    await api(bob).messages.deleteForMe.mutate({ conversationId: chat.id, seq: 1 });
    expect(await unreadOf(bob, other.id)).toBe(1);
    expect(await listedOf(bob, other.id)).toEqual([1]);
    expect(await listedOf(bob, chat.id)).toEqual([4]);

    await api(bob).messages.markRead.mutate({ conversationId: chat.id, seq: 4 });
    expect(await unreadOf(bob, chat.id)).toBe(0);
    expect(await listedOf(bob, chat.id)).toEqual([]);
    expect(await unreadOf(bob, other.id)).toBe(1);
  });

  it('lists the unread seqs up to 100, after my read position and my joining, and none past', async () => {
    const [owner, bob, carol] = [
      await registerUser(t),
      await registerUser(t),
      await registerUser(t),
    ];
    await befriend(t, owner, bob);
    await befriend(t, owner, carol);
    const group = await api(owner).conversations.create.mutate({
      kind: 'group',
      title: 'g',
      memberIds: [bob.userId],
    });
    for (let i = 0; i < 3; i++) await sendText(t, owner, group.id, `before carol ${i}`);
    await api(owner).conversations.addMembers.mutate({ id: group.id, userIds: [carol.userId] });
    const joined = (await entryOf(carol, group.id))!.conversation.lastSeq;
    for (let i = 0; i < 99; i++) await sendText(t, owner, group.id, `m${i}`);
    // Carol joined after three of them: she counts the 99 since, listed one by one.
    const hers = await listedOf(carol, group.id);
    expect(hers).toHaveLength(99);
    expect(hers![0]).toBeGreaterThan(joined);
    // Bob has 102: a count only.
    const bobs = await entryOf(bob, group.id);
    expect(bobs).toMatchObject({ unread: 102, unreadSeqs: null });

    // A message of Bob's reads the conversation for him; the next ones are listed again.
    await sendText(t, bob, group.id, 'mine');
    await sendText(t, owner, group.id, 'after');
    const last = (await entryOf(bob, group.id))!.conversation.lastSeq;
    expect(await listedOf(bob, group.id)).toEqual([last]);
    // Carol is at 101 now: past the list.
    expect(await entryOf(carol, group.id)).toMatchObject({ unread: 101, unreadSeqs: null });
    await api(carol).messages.markRead.mutate({ conversationId: group.id, seq: last - 1 });
    expect(await listedOf(carol, group.id)).toEqual([last]);
  });
});
