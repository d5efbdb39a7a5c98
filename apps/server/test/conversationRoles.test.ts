import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  befriend,
  clientWithToken,
  PASSWORD,
  registerUser,
  type Account,
} from './helpers/accounts';
import { openStream } from './helpers/sync';
import { sendText } from './helpers/messaging';
import { backendLabel } from './helpers/env';
import { startServer, type TestServer } from './helpers/startServer';
import { codeOf } from './helpers/errors';

describe(`roles and membership hold under races and rejoins (${backendLabel})`, () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startServer();
  });
  afterAll(() => t.stop());

  const api = (a: Account) => clientWithToken(t, a.accessToken).api;
  /** An owner and `n` members in a fresh group. */
  const team = async (n = 2) => {
    const owner = await registerUser(t);
    const members: Account[] = [];
    for (let i = 0; i < n; i++) {
      const member = await registerUser(t);
      await befriend(t, owner, member);
      members.push(member);
    }
    const room = await api(owner).conversations.create.mutate({
      kind: 'group',
      title: 'Room',
      memberIds: members.map((m) => m.userId),
    });
    return { owner, members, room };
  };
  const roles = async (conversationId: string) => {
    const rows = await t.server.infra.ports.db
      .selectFrom('conversation_members')
      .select(['user_id', 'role'])
      .where('conversation_id', '=', conversationId)
      .execute();
    return new Map(rows.map((r) => [r.user_id, r.role]));
  };
  const owners = async (conversationId: string) =>
    [...(await roles(conversationId)).values()].filter((r) => r === 'owner').length;

  it('a restricted member who leaves comes back by invite restricted; an admin adding them back lifts it', async () => {
    const { owner, members, room } = await team();
    const [ann] = members as [Account];
    const { code } = await api(owner).conversations.createInvite.mutate({ id: room.id });
    await api(owner).conversations.setRole.mutate({
      id: room.id,
      userId: ann.userId,
      role: 'restricted',
    });
    await api(ann).conversations.leave.mutate({ id: room.id });
    expect((await api(ann).conversations.join.mutate({ code })).myRole).toBe('restricted');
    expect(await codeOf(sendText(t, ann, room.id, 'not allowed'))).toBe('FORBIDDEN');
    // Twice over: the restriction is the role's again, and leaving again keeps it again.
    await api(ann).conversations.leave.mutate({ id: room.id });
    expect((await api(ann).conversations.join.mutate({ code })).myRole).toBe('restricted');

    await api(ann).conversations.leave.mutate({ id: room.id });
    await api(owner).conversations.addMembers.mutate({ id: room.id, userIds: [ann.userId] });
    expect((await roles(room.id)).get(ann.userId)).toBe('member');
    await sendText(t, ann, room.id, 'back');
  });

  // The races below are of MySQL's connection pool: the embedded database runs one transaction
  // at a time, so there they pass with or without the row lock.
  it('two transfers at once leave one owner', async () => {
    for (let round = 0; round < 4; round++) {
      const { owner, members, room } = await team();
      const [ann, ben] = members as [Account, Account];
      const results = await Promise.allSettled([
        api(owner).conversations.transferOwnership.mutate({ id: room.id, userId: ann.userId }),
        api(owner).conversations.transferOwnership.mutate({ id: room.id, userId: ben.userId }),
      ]);
      expect(results.filter((r) => r.status === 'fulfilled').length).toBeGreaterThan(0);
      expect(await owners(room.id)).toBe(1);
    }
  });

  it('a transfer racing the new owner leaving leaves one owner', async () => {
    for (let round = 0; round < 4; round++) {
      const { owner, members, room } = await team();
      const [ann] = members as [Account];
      await Promise.allSettled([
        api(owner).conversations.transferOwnership.mutate({ id: room.id, userId: ann.userId }),
        api(ann).conversations.leave.mutate({ id: room.id }),
      ]);
      expect(await owners(room.id)).toBe(1);
    }
  });

  it('an admin demoting someone who is being made owner does not demote the owner', async () => {
    for (let round = 0; round < 4; round++) {
      const { owner, members, room } = await team();
      const [ann, ben] = members as [Account, Account];
      await api(owner).conversations.setRole.mutate({
        id: room.id,
        userId: ann.userId,
        role: 'admin',
      });
      await Promise.allSettled([
        api(owner).conversations.transferOwnership.mutate({ id: room.id, userId: ben.userId }),
        api(ann).conversations.setRole.mutate({
          id: room.id,
          userId: ben.userId,
          role: 'restricted',
        }),
      ]);
      const now = await roles(room.id);
      expect([...now.values()].filter((r) => r === 'owner')).toHaveLength(1);
      // Whoever owns it now was not restricted on the way.
      expect(now.get(ben.userId) === 'owner' || now.get(owner.userId) === 'owner').toBe(true);
    }
  });

  it('a deleted account leaves its conversations: members are told, an owned group passes to its oldest admin', async () => {
    const { owner, members, room } = await team(3);
    const [ann, ben, cy] = members as [Account, Account, Account];
    for (const admin of [ben, cy])
      await api(owner).conversations.setRole.mutate({
        id: room.id,
        userId: admin.userId,
        role: 'admin',
      });
    const chat = await api(owner).conversations.create.mutate({
      kind: 'direct',
      userId: ann.userId,
    });
    const benStream = await openStream(t, ben.accessToken);
    const annStream = await openStream(t, ann.accessToken);

    await api(owner).me.delete.mutate({ password: PASSWORD });

    expect(await benStream.next('member.role')).toMatchObject({
      event: { conversationId: room.id, userId: ben.userId, role: 'owner' },
    });
    expect(await benStream.next('member.left')).toMatchObject({
      event: { conversationId: room.id, userId: owner.userId },
    });
    const left = [await annStream.next('member.left'), await annStream.next('member.left')];
    expect(left.map((l) => l.event.conversationId).sort()).toEqual([chat.id, room.id].sort());
    const now = await roles(room.id);
    expect(Object.fromEntries(now)).toEqual({
      [ann.userId]: 'member',
      [ben.userId]: 'owner',
      [cy.userId]: 'admin',
    });
    expect((await api(ann).conversations.get.query({ id: room.id })).memberCount).toBe(3);
    // The heir manages the group: the owner's powers passed with it.
    await api(ben).conversations.update.mutate({ id: room.id, title: 'Renamed' });
    await api(ben).conversations.transferOwnership.mutate({ id: room.id, userId: cy.userId });
    await benStream.close();
    await annStream.close();
  });

  it('no receipt crosses a block, either way', async () => {
    const [ann, ben] = [await registerUser(t), await registerUser(t)];
    await befriend(t, ann, ben);
    const chat = await api(ann).conversations.create.mutate({ kind: 'direct', userId: ben.userId });
    for (const text of ['one', 'two', 'three']) await sendText(t, ben, chat.id, text);
    const cursorOf = async (who: Account) => (await api(who).sync.snapshot.query()).cursor;
    const receiptsTo = async (who: Account, after: string) =>
      (await api(who).sync.poll.query({ after })).events.filter((e) => e.event.type === 'receipt');

    // Read before any block: Ben hears of it.
    let from = await cursorOf(ben);
    await api(ann).messages.markRead.mutate({ conversationId: chat.id, seq: 1 });
    expect(await receiptsTo(ben, from)).toHaveLength(1);

    const steps = [
      { blocker: ann, blocked: ben, seq: 2 },
      { blocker: ben, blocked: ann, seq: 3 },
    ];
    for (const { blocker, blocked, seq } of steps) {
      await api(blocker).blocks.add.mutate({ userId: blocked.userId });
      from = await cursorOf(ben);
      await api(ann).messages.markRead.mutate({ conversationId: chat.id, seq });
      expect(await receiptsTo(ben, from)).toEqual([]);
      await api(blocker).blocks.remove.mutate({ userId: blocked.userId });
    }
  });

  it('across a block, neither side of a direct conversation changes its timer', async () => {
    const [ann, ben] = [await registerUser(t), await registerUser(t)];
    await befriend(t, ann, ben);
    const chat = await api(ann).conversations.create.mutate({ kind: 'direct', userId: ben.userId });
    await api(ann).blocks.add.mutate({ userId: ben.userId });
    for (const who of [ben, ann]) {
      expect(
        await codeOf(api(who).conversations.update.mutate({ id: chat.id, disappearSeconds: 60 })),
      ).toBe('FORBIDDEN');
    }
    expect((await api(ann).conversations.get.query({ id: chat.id })).disappearSeconds).toBe(0);
    await api(ann).blocks.remove.mutate({ userId: ben.userId });
    await api(ben).conversations.update.mutate({ id: chat.id, disappearSeconds: 60 });
  });
});
