import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clientWithToken, registerUser, type Account } from './helpers/accounts';
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
  const unreadOf = async (a: Account, conversationId: string) =>
    (await api(a).sync.snapshot.query()).conversations.find(
      (c) => c.conversation.id === conversationId,
    )?.unread;

  it('leaves out messages I deleted for me, as the SDK does, and only mine', async () => {
    const [alice, bob] = [await registerUser(t), await registerUser(t)];
    const chat = await api(alice).conversations.create.mutate({
      kind: 'direct',
      userId: bob.userId,
    });
    for (const text of ['one', 'two', 'three', 'four']) await sendText(t, alice, chat.id, text);
    expect(await unreadOf(bob, chat.id)).toBe(4);

    await api(bob).messages.deleteForMe.mutate({ conversationId: chat.id, seq: 2 });
    expect(await unreadOf(bob, chat.id)).toBe(3);
    // Hidden and then deleted for everyone: gone once, not twice.
    await api(bob).messages.deleteForMe.mutate({ conversationId: chat.id, seq: 3 });
    await api(alice).messages.delete.mutate({ conversationId: chat.id, seq: 3 });
    expect(await unreadOf(bob, chat.id)).toBe(2);

    // Alice hiding a message of hers changes nothing for Bob; her own count stays 0.
    await api(alice).messages.deleteForMe.mutate({ conversationId: chat.id, seq: 4 });
    expect(await unreadOf(bob, chat.id)).toBe(2);
    expect(await unreadOf(alice, chat.id)).toBe(0);

    // What Bob hid here does not hide the same seq of another conversation.
    const carol = await registerUser(t);
    const other = await api(carol).conversations.create.mutate({
      kind: 'direct',
      userId: bob.userId,
    });
    await sendText(t, carol, other.id, 'from carol');
    await api(bob).messages.deleteForMe.mutate({ conversationId: chat.id, seq: 1 });
    expect(await unreadOf(bob, other.id)).toBe(1);
    expect(await unreadOf(bob, chat.id)).toBe(1);

    await api(bob).messages.markRead.mutate({ conversationId: chat.id, seq: 4 });
    expect(await unreadOf(bob, chat.id)).toBe(0);
    expect(await unreadOf(bob, other.id)).toBe(1);
  });
});
