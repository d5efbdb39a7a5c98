import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { befriend, clientWithToken, registerUser } from './helpers/accounts';
import { backendLabel } from './helpers/env';
import { b64 } from './helpers/messaging';
import { startServer, type TestServer } from './helpers/startServer';

/**
 * MySQL compares strings ignoring case by default, SQLite as bytes. An id or code in another
 * case must mean the same on both: ids are refused unless lower case (as the server makes them),
 * and the codes clients choose or are given compare as bytes everywhere.
 */
describe(`ids and codes in another case (${backendLabel})`, () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startServer();
  });
  afterAll(() => t.stop());

  const api = (token: string) => clientWithToken(t, token).api;

  it('an id in capitals is refused at the edge, over tRPC and REST, and nothing is written', async () => {
    const [alice, bob] = [await registerUser(t), await registerUser(t)];
    await befriend(t, alice, bob);
    for (const userId of [alice.userId.toUpperCase(), bob.userId.toUpperCase()]) {
      await expect(
        api(alice.accessToken).conversations.create.mutate({ kind: 'direct', userId }),
      ).rejects.toMatchObject({ data: { code: 'BAD_REQUEST' } });
    }
    expect((await api(alice.accessToken).sync.snapshot.query()).conversations).toEqual([]);
    // One-time prekey budgets are keyed by the target's id: a capital must not be a new key.
    await expect(
      api(alice.accessToken).keys.claim.mutate({ userId: bob.userId.toUpperCase() }),
    ).rejects.toMatchObject({ data: { code: 'BAD_REQUEST' } });
    const rest = await fetch(
      `${t.server.url}/api/v1/users/${bob.userId.toUpperCase()}/keys/claim`,
      {
        method: 'POST',
        headers: {
          authorization: `Bearer ${alice.accessToken}`,
          'content-type': 'application/json',
        },
        body: '{}',
      },
    );
    expect(rest.status).toBe(400);
    // The same ids in lower case are fine.
    const chat = await api(alice.accessToken).conversations.create.mutate({
      kind: 'direct',
      userId: bob.userId,
    });
    expect(chat.kind).toBe('direct');
  });

  it('client message ids that differ only in case are two messages', async () => {
    const [alice, bob] = [await registerUser(t), await registerUser(t)];
    await befriend(t, alice, bob);
    const chat = await api(alice.accessToken).conversations.create.mutate({
      kind: 'direct',
      userId: bob.userId,
    });
    const send = (clientMessageId: string, text: string) =>
      api(alice.accessToken).messages.send.mutate({
        conversationId: chat.id,
        clientMessageId,
        contentType: 'text/plain',
        ciphertext: b64(text),
      });
    const first = await send('abcdefgh-1', 'one');
    const second = await send('ABCDEFGH-1', 'two');
    expect(second.seq).toBe(first.seq + 1);
    expect(Buffer.from(second.ciphertext!, 'base64').toString()).toBe('two');
    // The same id again is still the first message (the resend rule holds).
    expect((await send('abcdefgh-1', 'one again')).seq).toBe(first.seq);
  });

  it('an invite code in another case is another code', async () => {
    const [owner, joiner] = [await registerUser(t), await registerUser(t)];
    const room = await api(owner.accessToken).conversations.create.mutate({
      kind: 'group',
      title: 'Case room',
      memberIds: [],
    });
    const { code } = await api(owner.accessToken).conversations.createInvite.mutate({
      id: room.id,
    });
    const swapped = [...code]
      .map((c) => (c === c.toUpperCase() ? c.toLowerCase() : c.toUpperCase()))
      .join('');
    expect(swapped).not.toBe(code); // 22 random base64url characters: some are letters
    await expect(
      api(joiner.accessToken).conversations.join.mutate({ code: swapped }),
    ).rejects.toMatchObject({ data: { code: 'NOT_FOUND' } });
    const members = await api(owner.accessToken).conversations.members.query({ id: room.id });
    expect(members.members.map((m) => m.userId)).toEqual([owner.userId]);
  });
});
