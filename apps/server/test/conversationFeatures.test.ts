import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { MAX_LIVE_INVITES, purgeExpiredMessages } from '@mvp/api';
import type { TSyncEvent } from '@mvp/contracts';
import { errorCodeOf } from '@mvp/sdk';
import {
  befriend,
  clientWithToken,
  PASSWORD,
  registerUser,
  type Account,
} from './helpers/accounts';
import { b64, newClientMessageId, sendText } from './helpers/messaging';
import { backendLabel } from './helpers/env';
import { startServer, type TestServer } from './helpers/startServer';
import { PNG } from './helpers/images';
import { openStream, storedReceipts } from './helpers/sync';
import { codeOf } from './helpers/errors';

const cid = newClientMessageId;
/** The fields these REST answers are checked for. */
type RestBody = {
  id?: string;
  cursor?: string;
  seq?: number;
  ciphertext?: string;
  editedAt?: string | null;
  messages?: unknown[];
  events?: { event: { type: string } }[];
};

describe(`edits, deletions, reactions, pins, roles, invites, slow mode, timers (${backendLabel})`, () => {
  let t: TestServer;
  // Moved forward by the disappearing-messages tests only (their own messages; see purgeAfter).
  let offsetMs = 0;
  beforeAll(async () => {
    // No expiry loop (startServer's default): only purgeAfter purges, with the clock moved. Its
    // many tests come from one address within a minute: more than the default 600 requests.
    t = await startServer(
      { ipRateLimit: { points: 100_000, durationSeconds: 60 } },
      { clock: { now: () => Date.now() + offsetMs } },
    );
  });
  afterAll(() => t.stop());

  const api = (a: Account) => clientWithToken(t, a.accessToken).api;
  /** Runs the expiry job as if `aheadMs` had passed; answers how many messages it purged. */
  const purgeAfter = async (aheadMs: number) => {
    offsetMs = aheadMs;
    try {
      const ctx = { ports: t.server.infra.ports, settings: t.server.settings } as Parameters<
        typeof purgeExpiredMessages
      >[0];
      return await purgeExpiredMessages(ctx);
    } finally {
      offsetMs = 0;
    }
  };
  const send = (a: Account, conversationId: string, text: string) =>
    sendText(t, a, conversationId, text);
  /** An owner and two members in a fresh group. */
  const team = async (kind: 'group' | 'channel' = 'group') => {
    const [owner, ann, ben] = [await registerUser(t), await registerUser(t), await registerUser(t)];
    await befriend(t, owner, ann);
    await befriend(t, owner, ben);
    const room = await api(owner).conversations.create.mutate({
      kind,
      title: 'Room',
      memberIds: [ann.userId, ben.userId],
    });
    return { owner, ann, ben, room };
  };

  it('an edit named by a client edit id is applied once, even after a newer edit, and answered after leaving', async () => {
    const { owner, ann, ben, room } = await team();
    const benStream = await openStream(t, ben.accessToken);
    const sent = await send(ann, room.id, 'draft');
    const ref = { conversationId: room.id, seq: sent.seq };
    const edit = (text: string, clientEditId?: string) =>
      api(ann).messages.edit.mutate({
        ...ref,
        contentType: 'text/plain',
        ciphertext: b64(text),
        ...(clientEditId === undefined ? {} : { clientEditId }),
      });
    const first = await edit('first edit', 'edit-0000000001');
    // Another device's edit comes in between; then the first one's retry (its answer was lost).
    const second = await edit('second edit', 'edit-0000000002');
    offsetMs = 1000; // an edit applied now would have another editedAt
    const retried = await edit('first edit', 'edit-0000000001').finally(() => (offsetMs = 0));
    expect(retried).toEqual(second);
    expect(second.editedAt).not.toBe(first.editedAt);
    // An id differing only in case is another edit (MySQL compares it as bytes too).
    const other = await edit('third edit', 'EDIT-0000000001');
    expect(Buffer.from(other.ciphertext!, 'base64').toString()).toBe('third edit');
    // Two copies of one edit at once (a retry while the first is on its way): applied once. On
    // MySQL the second meets the first's row at its insert; SQLite runs them one after the other.
    const [raced, racedAgain] = await Promise.all([
      edit('raced', 'edit-0000000003'),
      edit('raced', 'edit-0000000003'),
    ]);
    expect(racedAgain).toEqual(raced);
    // Ben was told of each edit once, in order, and never of the retry (up to a later event).
    await api(owner).messages.react.mutate({ ...ref, emoji: '👍', on: true });
    const told: string[] = [];
    for (;;) {
      const { event } = await benStream.events.next();
      if (event.type === 'reaction') break;
      if (event.type === 'message.updated')
        told.push(Buffer.from(event.message.ciphertext!, 'base64').toString());
    }
    expect(told).toEqual(['first edit', 'second edit', 'third edit', 'raced']);

    // Malformed ids are refused, nothing written.
    expect(await codeOf(edit('x', 'no spaces allowed'))).toBe('BAD_REQUEST');
    expect(await codeOf(edit('x', 'short'))).toBe('BAD_REQUEST');
    // A retry after Ann left answers her message as it is; a new edit is refused.
    await api(ann).conversations.leave.mutate({ id: room.id });
    // (Without who reacted since she left: her history no longer shows the message.)
    expect(other.reactions).toEqual([]);
    const afterLeaving = await edit('third edit', 'EDIT-0000000001');
    expect(afterLeaving).toMatchObject({ id: sent.id, editedAt: raced.editedAt, reactions: [] });
    expect(await codeOf(edit('fourth', 'edit-0000000004'))).toBe('NOT_FOUND');
    // Deleted for everyone since: the retry's answer is the tombstone.
    await api(owner).messages.delete.mutate(ref);
    expect(await edit('third edit', 'EDIT-0000000001')).toMatchObject({
      id: sent.id,
      ciphertext: null,
      deletedAt: expect.any(String),
    });
    // Nobody else can use her ids to read her message.
    expect(
      await codeOf(
        api(ben).messages.edit.mutate({
          ...ref,
          contentType: 'text/plain',
          ciphertext: b64('x'),
          clientEditId: 'edit-0000000002',
        }),
      ),
    ).toBe('FORBIDDEN');
  });

  it('edit by the sender only; delete for everyone leaves a tombstone; delete for me hides', async () => {
    const { owner, ann, ben, room } = await team();
    const benStream = await openStream(t, ben.accessToken);
    const sent = await send(ann, room.id, 'first draft');
    const ref = { conversationId: room.id, seq: sent.seq };

    expect(
      await codeOf(
        api(ben).messages.edit.mutate({ ...ref, contentType: 'text/plain', ciphertext: b64('x') }),
      ),
    ).toBe('FORBIDDEN');
    const edited = await api(ann).messages.edit.mutate({
      ...ref,
      contentType: 'text/plain',
      ciphertext: b64('final'),
    });
    expect(edited.editedAt).not.toBeNull();
    await benStream.next('message.new');
    const update = (await benStream.next('message.updated')).event.message;
    expect(Buffer.from(update.ciphertext!, 'base64').toString()).toBe('final');

    // Ben (a member) cannot delete Ann's message; the owner (admin) can.
    expect(await codeOf(api(ben).messages.delete.mutate(ref))).toBe('FORBIDDEN');
    const tomb = await api(owner).messages.delete.mutate(ref);
    expect(tomb).toMatchObject({ ciphertext: null, seq: sent.seq });
    expect(tomb.deletedAt).not.toBeNull();
    expect((await benStream.next('message.updated')).event.message.ciphertext).toBeNull();
    const [inHistory] = (await api(ben).messages.history.query({ conversationId: room.id }))
      .messages;
    expect(inHistory).toMatchObject({ seq: sent.seq, ciphertext: null });

    const other = await send(ann, room.id, 'keep for ann');
    await api(ben).messages.deleteForMe.mutate({ conversationId: room.id, seq: other.seq });
    expect((await benStream.next('messages.removed')).event).toMatchObject({
      seqs: [other.seq],
      reason: 'deleted_for_me',
    });
    const bens = (await api(ben).messages.history.query({ conversationId: room.id })).messages;
    const anns = (await api(ann).messages.history.query({ conversationId: room.id })).messages;
    expect(bens.map((m) => m.seq)).toEqual([sent.seq]);
    expect(anns.map((m) => m.seq)).toEqual([other.seq, sent.seq]);
    await benStream.close();
  });

  it('reactions are a set per member; pins are for admins', async () => {
    const { owner, ann, ben, room } = await team();
    const sent = await send(ann, room.id, 'react to me');
    const ref = { conversationId: room.id, seq: sent.seq };
    const annStream = await openStream(t, ann.accessToken);

    await api(ben).messages.react.mutate({ ...ref, emoji: '👍', on: true });
    await api(ben).messages.react.mutate({ ...ref, emoji: '👍', on: true });
    await api(owner).messages.react.mutate({ ...ref, emoji: '👍🏽', on: true });
    expect((await annStream.next('reaction')).event).toMatchObject({
      userId: ben.userId,
      emoji: '👍',
      on: true,
    });
    const [withReactions] = (await api(ann).messages.history.query({ conversationId: room.id }))
      .messages;
    expect(withReactions!.reactions).toEqual([
      { emoji: '👍', userIds: [ben.userId] },
      { emoji: '👍🏽', userIds: [owner.userId] },
    ]);
    await api(ben).messages.react.mutate({ ...ref, emoji: '👍', on: false });
    // One emoji, nothing else: no words (reactions are readable by the server), no two at once.
    for (const emoji of ['not one', 'ok', 'a', '👍👍', '👍 ', '1'])
      expect(await codeOf(api(ben).messages.react.mutate({ ...ref, emoji, on: true })), emoji).toBe(
        'BAD_REQUEST',
      );
    for (const emoji of ['🏳️‍🌈', '🇩🇪', '1️⃣', '👨‍👩‍👧', '❤️'])
      await api(ben).messages.react.mutate({ ...ref, emoji, on: true });
    const outsider = await registerUser(t);
    expect(
      await codeOf(api(outsider).messages.react.mutate({ ...ref, emoji: '👍', on: true })),
    ).toBe('NOT_FOUND');

    expect(await codeOf(api(ben).messages.pin.mutate({ ...ref, pinned: true }))).toBe('FORBIDDEN');
    await api(owner).messages.pin.mutate({ ...ref, pinned: true });
    expect((await api(ben).messages.pins.query({ conversationId: room.id })).messages).toHaveLength(
      1,
    );
    await api(owner).messages.pin.mutate({ ...ref, pinned: false });
    expect((await api(ben).messages.pins.query({ conversationId: room.id })).messages).toEqual([]);
    await annStream.close();
  });

  it('one member puts several emoji on a message and takes one back, on every backend', async () => {
    const { ann, ben, room } = await team();
    const sent = await send(ann, room.id, 'react to me');
    const ref = { conversationId: room.id, seq: sent.seq };
    // The first three weigh the same under MariaDB's utf8mb4_unicode_ci; the last is a skin tone.
    const emoji = ['👍', '🎉', '😮', '👍🏽'];
    for (const e of emoji) await api(ben).messages.react.mutate({ ...ref, emoji: e, on: true });
    const shown = async () => {
      const [message] = (await api(ann).messages.history.query({ conversationId: room.id }))
        .messages;
      return message!.reactions.map((r) => [r.emoji, r.userIds]).sort();
    };
    expect(await shown()).toEqual(emoji.map((e) => [e, [ben.userId]]).sort());
    await api(ben).messages.react.mutate({ ...ref, emoji: '🎉', on: false });
    expect(await shown()).toEqual(
      emoji
        .filter((e) => e !== '🎉')
        .map((e) => [e, [ben.userId]])
        .sort(),
    );
  });

  it('typing reaches the others live and is never stored', async () => {
    const { ann, ben, room } = await team();
    const benStream = await openStream(t, ben.accessToken);
    await api(ann).messages.typing.mutate({ conversationId: room.id });
    const typing = (await benStream.next('typing')).event;
    expect(typing).toMatchObject({ conversationId: room.id, userId: ann.userId });
    expect(Date.parse(typing.until)).toBeGreaterThan(Date.now());
    expect(
      (await api(ben).sync.poll.query({ after: '0' })).events.map((e) => e.event.type),
    ).not.toContain('typing');
    const outsider = await registerUser(t);
    expect(await codeOf(api(outsider).messages.typing.mutate({ conversationId: room.id }))).toBe(
      'NOT_FOUND',
    );
    await benStream.close();
  });

  it('roles: restricted members read only, admins are the owner’s to make, ownership moves', async () => {
    const { owner, ann, ben, room } = await team();
    const set = (who: Account, userId: string, role: 'admin' | 'member' | 'restricted') =>
      api(who).conversations.setRole.mutate({ id: room.id, userId, role });

    expect(await codeOf(set(ann, ben.userId, 'restricted'))).toBe('FORBIDDEN');
    await set(owner, ann.userId, 'admin');
    expect(await codeOf(set(ann, ben.userId, 'admin'))).toBe('FORBIDDEN');
    await set(ann, ben.userId, 'restricted');
    expect(await codeOf(send(ben, room.id, 'can I?'))).toBe('FORBIDDEN');
    expect(await codeOf(api(ben).messages.typing.mutate({ conversationId: room.id }))).toBe(
      'FORBIDDEN',
    );
    await set(ann, ben.userId, 'member');
    await send(ben, room.id, 'yes');

    await api(owner).conversations.transferOwnership.mutate({ id: room.id, userId: ben.userId });
    const roles = (await api(ann).conversations.members.query({ id: room.id })).members;
    expect(Object.fromEntries(roles.map((m) => [m.userId, m.role]))).toEqual({
      [owner.userId]: 'admin',
      [ann.userId]: 'admin',
      [ben.userId]: 'owner',
    });
    expect(await codeOf(api(owner).conversations.delete.mutate({ id: room.id }))).toBe('FORBIDDEN');
    const annStream = await openStream(t, ann.accessToken);
    await api(ben).conversations.delete.mutate({ id: room.id });
    expect((await annStream.next('conversation.left')).event.reason).toBe('deleted');
    expect(await codeOf(api(ann).conversations.get.query({ id: room.id }))).toBe('NOT_FOUND');
    await annStream.close();
  });

  it('channels: only admins post; invites with a use cap, preview, revoke', async () => {
    const { owner, ann, room } = await team('channel');
    expect(await codeOf(send(ann, room.id, 'hello channel'))).toBe('FORBIDDEN');
    await send(owner, room.id, 'announcement');

    expect(
      await codeOf(api(ann).conversations.createInvite.mutate({ id: room.id, maxUses: 1 })),
    ).toBe('FORBIDDEN');
    const invite = await api(owner).conversations.createInvite.mutate({ id: room.id, maxUses: 1 });
    const [reader, late] = [await registerUser(t), await registerUser(t)];
    expect(await api(reader).conversations.previewInvite.query({ code: invite.code })).toEqual({
      kind: 'channel',
      title: 'Room',
      description: null,
      memberCount: 3,
    });
    expect(await codeOf(api(reader).conversations.get.query({ id: room.id }))).toBe('NOT_FOUND');
    const joined = await api(reader).conversations.join.mutate({ code: invite.code });
    expect(joined).toMatchObject({ id: room.id, myRole: 'member', memberCount: 4 });
    // Joining again spends nothing; the cap is reached for anyone else.
    expect((await api(reader).conversations.join.mutate({ code: invite.code })).id).toBe(room.id);
    expect(await codeOf(api(late).conversations.join.mutate({ code: invite.code }))).toBe(
      'NOT_FOUND',
    );
    // History before joining stays hidden; what follows arrives.
    expect(
      (await api(reader).messages.history.query({ conversationId: room.id })).messages,
    ).toEqual([]);

    const open = await api(owner).conversations.createInvite.mutate({ id: room.id });
    await api(owner).conversations.revokeInvite.mutate({ code: open.code });
    expect(await codeOf(api(late).conversations.previewInvite.query({ code: open.code }))).toBe(
      'NOT_FOUND',
    );
    expect(await codeOf(api(late).conversations.join.mutate({ code: 'short' }))).toBe(
      'BAD_REQUEST',
    );
    expect(await codeOf(api(late).conversations.revokeInvite.mutate({ code: invite.code }))).toBe(
      'NOT_FOUND',
    );
  });

  it('invites: a member an admin removed cannot rejoin until an admin adds them back; one who left can', async () => {
    const { owner, ann, ben, room } = await team();
    const { code } = await api(owner).conversations.createInvite.mutate({ id: room.id });
    await api(owner).conversations.removeMember.mutate({ id: room.id, userId: ann.userId });
    expect(await codeOf(api(ann).conversations.join.mutate({ code }))).toBe('FORBIDDEN');
    expect(await codeOf(api(ann).conversations.get.query({ id: room.id }))).toBe('NOT_FOUND');
    await api(ben).conversations.leave.mutate({ id: room.id });
    expect((await api(ben).conversations.join.mutate({ code })).myRole).toBe('member');
    // Added back by an admin: the ban is gone, so a later leave and rejoin by link works.
    await api(owner).conversations.addMembers.mutate({ id: room.id, userIds: [ann.userId] });
    await api(ann).conversations.leave.mutate({ id: room.id });
    expect((await api(ann).conversations.join.mutate({ code })).myRole).toBe('member');
  });

  // A race of MySQL's connection pool (the embedded database runs the two joins one after the
  // other): both passed the membership check before either was a member.
  it('invites: two joins of mine at once spend one use', async () => {
    const { owner, room } = await team();
    const invite = await api(owner).conversations.createInvite.mutate({ id: room.id, maxUses: 2 });
    const [cy, dan] = [await registerUser(t), await registerUser(t)];
    const both = await Promise.all([
      api(cy).conversations.join.mutate({ code: invite.code }),
      api(cy).conversations.join.mutate({ code: invite.code }),
    ]);
    expect(both.map((c) => c.id)).toEqual([room.id, room.id]);
    expect((await api(dan).conversations.join.mutate({ code: invite.code })).memberCount).toBe(5);
  });

  it('an update that changes nothing is refused BAD_REQUEST, over tRPC and REST', async () => {
    const { owner, room } = await team();
    expect(await codeOf(api(owner).conversations.update.mutate({ id: room.id }))).toBe(
      'BAD_REQUEST',
    );
    const rest = await fetch(`${t.server.url}/api/v1/conversations/${room.id}`, {
      method: 'PATCH',
      headers: { authorization: `Bearer ${owner.accessToken}`, 'content-type': 'application/json' },
      body: '{}',
    });
    expect(rest.status).toBe(400);
    expect(await api(owner).conversations.get.query({ id: room.id })).toEqual(room);
  });

  it('slow mode spaces out members (admins exempt) and answers the wait', async () => {
    const { owner, ann, room } = await team();
    expect(
      await codeOf(api(ann).conversations.update.mutate({ id: room.id, slowModeSeconds: 30 })),
    ).toBe('FORBIDDEN');
    const updated = await api(owner).conversations.update.mutate({
      id: room.id,
      slowModeSeconds: 30,
    });
    expect(updated.slowModeSeconds).toBe(30);
    await send(ann, room.id, 'one');
    const slowed = await send(ann, room.id, 'two').catch((e: unknown) => e);
    expect(errorCodeOf(slowed)).toBe('TOO_MANY_REQUESTS');
    const wait = (slowed as { data?: { retryAfterMs?: number } }).data?.retryAfterMs;
    expect(wait).toBeGreaterThan(0);
    expect(wait).toBeLessThanOrEqual(30_000);
    await send(owner, room.id, 'admins are exempt');
    await send(owner, room.id, 'twice');
    expect((await api(ann).conversations.get.query({ id: room.id })).lastSeq).toBe(3);
  });

  it('slow mode: leaving and joining again by invite keeps the wait; a newcomer posts at once', async () => {
    const { owner, ann, room } = await team();
    await api(owner).conversations.update.mutate({ id: room.id, slowModeSeconds: 30 });
    const invite = await api(owner).conversations.createInvite.mutate({ id: room.id });
    await send(ann, room.id, 'one');
    await api(ann).conversations.leave.mutate({ id: room.id });
    await api(ann).conversations.join.mutate({ code: invite.code });
    const slowed = await send(ann, room.id, 'two').catch((e: unknown) => e);
    expect(errorCodeOf(slowed)).toBe('TOO_MANY_REQUESTS');
    expect((slowed as { data?: { retryAfterMs?: number } }).data?.retryAfterMs).toBeGreaterThan(0);
    const newcomer = await registerUser(t);
    await api(newcomer).conversations.join.mutate({ code: invite.code });
    await send(newcomer, room.id, 'hello');
    expect((await api(owner).conversations.get.query({ id: room.id })).lastSeq).toBe(2);
  });

  it('slow mode: of several sends at once, one goes through and the others are told to wait', async () => {
    const { owner, ann, room } = await team();
    await api(owner).conversations.update.mutate({ id: room.id, slowModeSeconds: 30 });
    // One client: the five leave in one batch and the server decides them side by side.
    const annApi = api(ann);
    const outcomes = await Promise.all(
      ['a', 'b', 'c', 'd', 'e'].map((text) =>
        annApi.messages.send
          .mutate({
            conversationId: room.id,
            clientMessageId: cid(),
            contentType: 'text/plain',
            ciphertext: b64(text),
          })
          .then(
            () => 'sent',
            (e: unknown) => errorCodeOf(e),
          ),
      ),
    );
    expect(outcomes.sort()).toEqual([
      'TOO_MANY_REQUESTS',
      'TOO_MANY_REQUESTS',
      'TOO_MANY_REQUESTS',
      'TOO_MANY_REQUESTS',
      'sent',
    ]);
    expect((await api(ann).conversations.get.query({ id: room.id })).lastSeq).toBe(1);

    // A resend after the wait answers the first message and leaves the slot to the next one.
    try {
      offsetMs = 31_000;
      const first = await send(ann, room.id, 'first');
      offsetMs = 62_000;
      expect(await sendText(t, ann, room.id, 'first', first.clientMessageId)).toEqual(first);
      await send(ann, room.id, 'next');
    } finally {
      offsetMs = 0;
    }
  });

  // Every send below follows one by the same member, so its decision comes from the posting
  // cache: each refusal proves that what changed reached the send anyway, and nothing was stored.
  it('a member who just posted is refused at once when demoted, blocked, slowed or removed', async () => {
    const { owner, ann, ben, room } = await team();
    const lastSeq = async () => (await api(owner).conversations.get.query({ id: room.id })).lastSeq;
    await send(ann, room.id, 'one');
    // Demoted: the write itself finds the role changed (no bus message for roles).
    await api(owner).conversations.setRole.mutate({
      id: room.id,
      userId: ann.userId,
      role: 'restricted',
    });
    expect(await codeOf(send(ann, room.id, 'as restricted'))).toBe('FORBIDDEN');
    await api(owner).conversations.setRole.mutate({
      id: room.id,
      userId: ann.userId,
      role: 'member',
    });
    // Refused on the fresh read, accepted again with no wait for the cache to expire.
    const two = await send(ann, room.id, 'two');
    // A role change that still allows posting: the write refuses the cached role, the send is
    // decided again on a fresh read and goes through.
    await api(owner).conversations.setRole.mutate({
      id: room.id,
      userId: ann.userId,
      role: 'admin',
    });
    await send(ann, room.id, 'as admin');
    await api(owner).conversations.setRole.mutate({
      id: room.id,
      userId: ann.userId,
      role: 'member',
    });
    await send(ann, room.id, 'member again');

    // A reply to what another member just sent: beyond the cached last seq, valid all the same.
    const bens = await send(ben, room.id, 'from ben');
    const reply = await api(ann).messages.send.mutate({
      conversationId: room.id,
      clientMessageId: cid(),
      contentType: 'text/plain',
      ciphertext: b64('re'),
      replyToSeq: bens.seq,
    });
    expect(reply.replyToSeq).toBe(bens.seq);

    // Slow mode switched on: the very next send waits; a resend of a stored message still answers it.
    await api(owner).conversations.update.mutate({ id: room.id, slowModeSeconds: 60 });
    expect(await codeOf(send(ann, room.id, 'too soon'))).toBe('TOO_MANY_REQUESTS');
    const again = await sendText(t, ann, room.id, 'two', two.clientMessageId);
    expect(again).toMatchObject({ id: two.id, seq: two.seq });
    await api(owner).conversations.update.mutate({ id: room.id, slowModeSeconds: 0 });

    // Removed: the write finds no membership.
    await send(ann, room.id, 'last words');
    await api(owner).conversations.removeMember.mutate({ id: room.id, userId: ann.userId });
    const before = await lastSeq();
    expect(await codeOf(send(ann, room.id, 'after removal'))).toBe('NOT_FOUND');
    expect(await lastSeq()).toBe(before);

    // A direct conversation: blocked right after a send, then unblocked.
    const direct = await api(owner).conversations.create.mutate({
      kind: 'direct',
      userId: ben.userId,
    });
    await send(ben, direct.id, 'hi');
    await api(owner).blocks.add.mutate({ userId: ben.userId });
    expect(await codeOf(send(ben, direct.id, 'blocked'))).toBe('FORBIDDEN');
    await api(owner).blocks.remove.mutate({ userId: ben.userId });
    await send(ben, direct.id, 'unblocked');
    const { messages } = await api(owner).messages.history.query({ conversationId: direct.id });
    expect(messages.map((m) => m.seq).sort()).toEqual([1, 2]); // 'hi' and 'unblocked' only
  });

  it('someone removed, reading an old backlog, gets the message but not who reacted', async () => {
    const { owner, ann, ben, room } = await team();
    const { cursor: benCursor } = await api(ben).sync.snapshot.query();
    const { cursor: annCursor } = await api(ann).sync.snapshot.query();
    const sent = await send(ann, room.id, 'react to me');
    const ref = { conversationId: room.id, seq: sent.seq };
    await api(owner).messages.react.mutate({ ...ref, emoji: '👍', on: true });
    await api(owner).conversations.removeMember.mutate({ id: room.id, userId: ben.userId });
    await api(ann).messages.react.mutate({ ...ref, emoji: '🎉', on: true });

    const benResumed = await openStream(t, ben.accessToken, benCursor);
    const toBen = (await benResumed.next('message.new')).event.message;
    expect([toBen.seq, toBen.reactions]).toEqual([sent.seq, []]);
    await benResumed.close();
    const polled = await api(ben).sync.poll.query({ after: benCursor });
    const viaPoll = polled.events.find((e) => e.event.type === 'message.new')!.event;
    expect(viaPoll).toMatchObject({ message: { seq: sent.seq, reactions: [] } });

    const annResumed = await openStream(t, ann.accessToken, annCursor);
    expect((await annResumed.next('message.new')).event.message.reactions).toEqual([
      { emoji: '👍', userIds: [owner.userId] },
      { emoji: '🎉', userIds: [ann.userId] },
    ]);
    await annResumed.close();
  });

  it('someone who left and was added back sees from the new join on: old backlog without reactions, nothing of the gap', async () => {
    const { owner, ann, ben, room } = await team();
    const { cursor: benCursor } = await api(ben).sync.snapshot.query();
    const before = await send(ann, room.id, 'before ben left');
    const old = { conversationId: room.id, seq: before.seq };
    await api(owner).messages.react.mutate({ ...old, emoji: '👍', on: true });
    await api(ben).conversations.leave.mutate({ id: room.id });

    const gap = await send(ann, room.id, 'while ben was out');
    const inGap = { conversationId: room.id, seq: gap.seq };
    await api(ann).messages.react.mutate({ ...old, emoji: '🎉', on: true });
    await api(owner).messages.react.mutate({ ...inGap, emoji: '👀', on: true });

    await api(owner).conversations.addMembers.mutate({ id: room.id, userIds: [ben.userId] });
    const after = await send(ann, room.id, 'ben is back');
    const current = { conversationId: room.id, seq: after.seq };
    await api(owner).messages.react.mutate({ ...current, emoji: '❤️', on: true });
    // Reacting to a message from before the new join, once Ben is back.
    await api(ann).messages.react.mutate({ ...old, emoji: '😮', on: true });
    const [oldAsAnnSees] = (
      await api(ann).messages.history.query({ conversationId: room.id, before: gap.seq })
    ).messages;
    expect(oldAsAnnSees!.reactions.map((r) => [r.emoji, r.userIds])).toEqual([
      ['👍', [owner.userId]],
      ['🎉', [ann.userId]],
      ['😮', [ann.userId]],
    ]);

    // History, pins, unread and reacting start at the new join: the first stay, the gap is not there.
    const history = await api(ben).messages.history.query({ conversationId: room.id });
    expect(history.messages.map((m) => [m.seq, m.reactions])).toEqual([
      [after.seq, [{ emoji: '❤️', userIds: [owner.userId] }]],
    ]);
    expect(history.more).toBe(false);
    const fromStart = await api(ben).messages.history.query({ conversationId: room.id, after: 0 });
    expect(fromStart.messages.map((m) => m.seq)).toEqual([after.seq]);
    const entry = (await api(ben).sync.snapshot.query()).conversations.find(
      (c) => c.conversation.id === room.id,
    );
    expect([entry?.unread, entry?.lastMessage?.seq]).toEqual([1, after.seq]);
    for (const ref of [old, inGap])
      expect(await codeOf(api(ben).messages.react.mutate({ ...ref, emoji: '👍', on: true }))).toBe(
        'NOT_FOUND',
      );

    // The old backlog: the first message as he was sent it but with no one's reactions (not
    // even those from while he was in), the reaction he was told of then, nothing of the gap,
    // and no reaction to a message before the new join.
    const backlog = (await api(ben).sync.poll.query({ after: benCursor })).events
      .map((e) => e.event)
      .flatMap((e): unknown[][] => {
        if (e.type === 'message.new' && e.message.conversationId === room.id)
          return [[e.type, e.message.seq, e.message.reactions]];
        if (e.type === 'reaction' && e.conversationId === room.id)
          return [[e.type, e.seq, e.emoji]];
        if (e.type === 'conversation.left' && e.conversationId === room.id) return [[e.type]];
        if (e.type === 'conversation.joined' && e.conversation.id === room.id) return [[e.type]];
        return [];
      });
    expect(backlog).toEqual([
      ['message.new', before.seq, []],
      ['reaction', before.seq, '👍'],
      ['conversation.left'],
      ['conversation.joined'],
      ['message.new', after.seq, [{ emoji: '❤️', userIds: [owner.userId] }]],
      ['reaction', after.seq, '❤️'],
    ]);
  });

  it('someone who joined after a message hears nothing of its edit, pin or deletion', async () => {
    const { owner, ann, room } = await team();
    const { cursor: annCursor } = await api(ann).sync.snapshot.query();
    const old = await send(ann, room.id, 'before cy');
    const cy = await registerUser(t);
    await befriend(t, owner, cy);
    await api(owner).conversations.addMembers.mutate({ id: room.id, userIds: [cy.userId] });
    const { cursor: cyCursor } = await api(cy).sync.snapshot.query();
    const recent = await send(ann, room.id, 'cy is in');
    for (const seq of [old.seq, recent.seq]) {
      const ref = { conversationId: room.id, seq };
      await api(ann).messages.edit.mutate({
        ...ref,
        contentType: 'text/plain',
        ciphertext: b64('edited'),
      });
      await api(owner).messages.pin.mutate({ ...ref, pinned: true });
      await api(owner).messages.delete.mutate(ref);
    }
    const changes = async (a: Account, after: string) =>
      (await api(a).sync.poll.query({ after })).events
        .map((e) => e.event)
        .flatMap((e): unknown[][] => {
          if (e.type === 'message.updated' && e.message.conversationId === room.id)
            return [[e.type, e.message.seq]];
          if (e.type === 'pin' && e.conversationId === room.id) return [[e.type, e.seq]];
          return [];
        });
    const told = (seq: number) => [
      ['message.updated', seq],
      ['pin', seq],
      ['message.updated', seq],
    ];
    // Ann, there from the start, hears of both; Cy only of the message after his join.
    expect(await changes(ann, annCursor)).toEqual([...told(old.seq), ...told(recent.seq)]);
    expect(await changes(cy, cyCursor)).toEqual(told(recent.seq));
  });

  it('an edit written to a later joiner’s stream before edits were told only to those who see the message is not read to them; someone removed still gets theirs', async () => {
    const { owner, ann, ben, room } = await team();
    const { cursor: benCursor } = await api(ben).sync.snapshot.query();
    const edit = (seq: number, text: string) =>
      api(ann).messages.edit.mutate({
        conversationId: room.id,
        seq,
        contentType: 'text/plain',
        ciphertext: b64(text),
      });
    const old = await send(ann, room.id, 'before cy');
    await edit(old.seq, 'edited before cy');
    const cy = await registerUser(t);
    await befriend(t, owner, cy);
    await api(owner).conversations.addMembers.mutate({ id: room.id, userIds: [cy.userId] });
    const { cursor: cyCursor } = await api(cy).sync.snapshot.query();
    const recent = await send(ann, room.id, 'cy is in');
    await edit(recent.seq, 'edited with cy');
    await edit(old.seq, 'edited again');
    // The row the code before the fix wrote to every member for that last edit: Cy's stream has
    // it in an old database. The last in his stream, so the cursor has to move past it.
    const { db } = t.server.infra.ports;
    const forged = await db.transaction().execute(async (trx) => {
      await trx
        .updateTable('user_streams')
        .set((eb) => ({ last_seq: eb('last_seq', '+', 1) }))
        .where('user_id', '=', cy.userId)
        .execute();
      const { last_seq } = await trx
        .selectFrom('user_streams')
        .select('last_seq')
        .where('user_id', '=', cy.userId)
        .executeTakeFirstOrThrow();
      await trx
        .insertInto('user_events')
        .values({
          user_id: cy.userId,
          seq: Number(last_seq),
          device_id: null,
          type: 'message.updated',
          payload: JSON.stringify({ conversationId: room.id, seq: old.seq }),
          created_at: t.server.infra.ports.clock.now(),
        })
        .execute();
      return Number(last_seq);
    });
    const ofRoom = (events: TSyncEvent[]) =>
      events.flatMap((e) =>
        (e.type === 'message.new' || e.type === 'message.updated') &&
        e.message.conversationId === room.id
          ? [[e.type, e.message.seq]]
          : [],
      );

    // The REST polling read: the row is skipped, and the cursor is past it.
    const polled = (await fetch(`${t.server.url}/api/v1/sync/events?after=${cyCursor}`, {
      headers: { authorization: `Bearer ${cy.accessToken}` },
    }).then((r) => r.json())) as { events: { id: string; event: TSyncEvent }[]; cursor: string };
    expect(ofRoom(polled.events.map((e) => e.event))).toEqual([
      ['message.new', recent.seq],
      ['message.updated', recent.seq],
    ]);
    expect(polled.cursor).toBe(String(forged));

    // The stream: nothing of it, and what comes next follows on.
    const cyStream = await openStream(t, cy.accessToken, cyCursor);
    const later = await send(ann, room.id, 'later');
    const streamed: TSyncEvent[] = [];
    for (;;) {
      const { event } = await cyStream.events.next();
      streamed.push(event);
      if (event.type === 'message.new' && event.message.seq === later.seq) break;
    }
    expect(ofRoom(streamed)).toEqual([
      ['message.new', recent.seq],
      ['message.updated', recent.seq],
      ['message.new', later.seq],
    ]);
    await cyStream.close();

    // Ben, removed since, still reads the edits he was told of while he was in.
    await api(owner).conversations.removeMember.mutate({ id: room.id, userId: ben.userId });
    const benBacklog = (await api(ben).sync.poll.query({ after: benCursor })).events.map(
      (e) => e.event,
    );
    expect(ofRoom(benBacklog)).toEqual([
      ['message.new', old.seq],
      ['message.updated', old.seq],
      ['message.new', recent.seq],
      ['message.updated', recent.seq],
      ['message.updated', old.seq],
      ['message.new', later.seq],
    ]);
  });

  it('a restricted member cannot react; across a block nobody reacts, pins or types', async () => {
    const { owner, ann, ben, room } = await team();
    const sent = await send(ann, room.id, 'react to me');
    const ref = { conversationId: room.id, seq: sent.seq };
    await api(owner).conversations.setRole.mutate({
      id: room.id,
      userId: ben.userId,
      role: 'restricted',
    });
    expect(await codeOf(api(ben).messages.react.mutate({ ...ref, emoji: '👍', on: true }))).toBe(
      'FORBIDDEN',
    );
    const [inGroup] = (await api(ann).messages.history.query({ conversationId: room.id })).messages;
    expect(inGroup!.reactions).toEqual([]);

    const direct = await api(owner).conversations.create.mutate({
      kind: 'direct',
      userId: ben.userId,
    });
    const hi = await send(ben, direct.id, 'hi');
    const said = { conversationId: direct.id, seq: hi.seq };
    await api(owner).blocks.add.mutate({ userId: ben.userId });
    for (const who of [owner, ben]) {
      const theirs = api(who).messages;
      expect(await codeOf(theirs.react.mutate({ ...said, emoji: '👍', on: true }))).toBe(
        'FORBIDDEN',
      );
      expect(await codeOf(theirs.pin.mutate({ ...said, pinned: true }))).toBe('FORBIDDEN');
      expect(await codeOf(theirs.typing.mutate({ conversationId: direct.id }))).toBe('FORBIDDEN');
    }
    const history = await api(owner).messages.history.query({ conversationId: direct.id });
    expect(history.messages.map((m) => m.reactions)).toEqual([[]]);
    expect((await api(owner).messages.pins.query({ conversationId: direct.id })).messages).toEqual(
      [],
    );

    await api(owner).blocks.remove.mutate({ userId: ben.userId });
    const ownerStream = await openStream(t, owner.accessToken);
    await api(ben).messages.typing.mutate({ conversationId: direct.id });
    expect((await ownerStream.next('typing')).event.userId).toBe(ben.userId);
    await api(ben).messages.react.mutate({ ...said, emoji: '👍', on: true });
    await api(ben).messages.pin.mutate({ ...said, pinned: true });
    await ownerStream.close();
  });

  it('a receipt goes to the members whose messages it passes, not to every member', async () => {
    const { owner, ann, ben, room } = await team();
    await send(owner, room.id, 'one'); // seq 1
    await send(ann, room.id, 'two'); // seq 2
    const ownerStream = await openStream(t, owner.accessToken);
    const annStream = await openStream(t, ann.accessToken);
    const mark = (seq: number) =>
      api(ben).messages.markRead.mutate({ conversationId: room.id, seq });

    await mark(1);
    expect((await ownerStream.next('receipt')).event).toMatchObject({
      userId: ben.userId,
      deliveredSeq: 1,
      readSeq: 1,
    });
    await mark(2);
    // Ann's first receipt is the one passing her message: the mark before passed only the owner's.
    expect((await annStream.next('receipt')).event).toMatchObject({
      userId: ben.userId,
      readSeq: 2,
    });
    await send(owner, room.id, 'three'); // seq 3
    await mark(3);
    // The owner's next receipt passes seq 3: the mark that passed only Ann's message was not his.
    expect((await ownerStream.next('receipt')).event).toMatchObject({
      userId: ben.userId,
      readSeq: 3,
    });
    // Ben's own devices hear of every move of his.
    const benStream = await openStream(t, ben.accessToken);
    await send(ann, room.id, 'four'); // seq 4
    await api(ben).messages.markDelivered.mutate({ conversationId: room.id, seq: 4 });
    expect((await benStream.next('receipt')).event).toMatchObject({ deliveredSeq: 4, readSeq: 3 });
    expect((await annStream.next('receipt')).event).toMatchObject({ deliveredSeq: 4, readSeq: 3 });
    for (const stream of [ownerStream, annStream, benStream]) await stream.close();

    // Where everyone stands, for a device that missed the receipts (a cold start): a read
    // position only where its member shares it, or it is mine.
    await api(ben).users.updatePrivacy.mutate({ readReceipts: false });
    const positions = async (a: Account) =>
      (await api(a).conversations.members.query({ id: room.id })).members
        .map((m) => ({ userId: m.userId, deliveredSeq: m.deliveredSeq, readSeq: m.readSeq }))
        .sort((x, y) => x.userId.localeCompare(y.userId));
    const expected = (readByBen: number | null) =>
      [
        { userId: owner.userId, deliveredSeq: 3, readSeq: 3 },
        { userId: ann.userId, deliveredSeq: 4, readSeq: 4 },
        { userId: ben.userId, deliveredSeq: 4, readSeq: readByBen },
      ].sort((x, y) => x.userId.localeCompare(y.userId));
    expect(await positions(owner)).toEqual(expected(null));
    expect(await positions(ben)).toEqual(expected(3));
    const rest = await fetch(`${t.server.url}/api/v1/conversations/${room.id}/members`, {
      headers: { authorization: `Bearer ${ann.accessToken}` },
    });
    expect(rest.status).toBe(200);
    expect(((await rest.json()) as { members: unknown[] }).members).toContainEqual(
      expect.objectContaining({ userId: ben.userId, deliveredSeq: 4, readSeq: null }),
    );

    // A block between two members: neither sees where the other has got to, as no receipt
    // passes between them; the others still do.
    await api(ben).users.updatePrivacy.mutate({ readReceipts: true });
    await api(ann).blocks.add.mutate({ userId: ben.userId });
    const without = (other: Account) =>
      expected(3).map((m) =>
        m.userId === other.userId ? { ...m, deliveredSeq: null, readSeq: null } : m,
      );
    expect(await positions(ann)).toEqual(without(ben));
    expect(await positions(ben)).toEqual(without(ann));
    expect(await positions(owner)).toEqual(expected(3));
  });

  it('a reply moves my positions silently; my next mark still tells the sender it passed', async () => {
    const [alice, bob] = [await registerUser(t), await registerUser(t)];
    const chat = await api(alice).conversations.create.mutate({
      kind: 'direct',
      userId: bob.userId,
    });
    await send(alice, chat.id, 'question'); // seq 1
    const aliceStream = await openStream(t, alice.accessToken);
    await send(bob, chat.id, 'answer'); // seq 2: Bob's positions move to 2 with it
    // A delivered mark for seq 1 arriving after the reply (the SDK's, raced by the send).
    expect(
      await api(bob).messages.markDelivered.mutate({ conversationId: chat.id, seq: 1 }),
    ).toEqual({ deliveredSeq: 2, readSeq: 2 });
    expect((await aliceStream.next('receipt')).event).toMatchObject({
      userId: bob.userId,
      deliveredSeq: 2,
      readSeq: 2,
    });
    // Told once: the same mark again is not news to anyone, and Alice's next receipt is the
    // one for her next message.
    await api(bob).messages.markRead.mutate({ conversationId: chat.id, seq: 2 });
    await send(alice, chat.id, 'thanks'); // seq 3
    await api(bob).messages.markRead.mutate({ conversationId: chat.id, seq: 3 });
    expect((await aliceStream.next('receipt')).event).toMatchObject({ readSeq: 3 });
    await aliceStream.close();
  });

  const receiptsTo = (a: Account) => storedReceipts(t, a.userId);
  const byConversation = <T extends { conversationId: string }>(list: T[]) =>
    [...list].sort((x, y) => x.conversationId.localeCompare(y.conversationId));

  it('delivered marks in several conversations in one call; not mine left out, bad input refused', async () => {
    const [alice, bob, eve] = [await registerUser(t), await registerUser(t), await registerUser(t)];
    const direct = (a: Account, b: Account) =>
      api(a).conversations.create.mutate({ kind: 'direct', userId: b.userId });
    const [withAlice, withEve, notMine] = [
      await direct(alice, bob),
      await direct(eve, bob),
      await direct(alice, eve),
    ];
    await befriend(t, alice, bob);
    await befriend(t, alice, eve);
    const group = await api(alice).conversations.create.mutate({
      kind: 'group',
      title: 'Three',
      memberIds: [bob.userId, eve.userId],
    });
    await send(alice, withAlice.id, 'one');
    await send(eve, withEve.id, 'two');
    await send(eve, withEve.id, 'three');
    await send(alice, notMine.id, 'private');
    await send(alice, group.id, 'hello'); // seq 1
    await send(eve, group.id, 'hi'); // seq 2
    const aliceStream = await openStream(t, alice.accessToken);
    const positions = async (a: Account, id: string) =>
      (await api(a).conversations.members.query({ id })).members.find(
        (m) => m.userId === bob.userId,
      );

    // Bad input first: nothing is written.
    const many = (marks: { conversationId: string; seq: number }[]) =>
      api(bob).messages.markDeliveredMany.mutate({ marks });
    expect(await codeOf(many([]))).toBe('BAD_REQUEST');
    expect(
      await codeOf(
        many(Array.from({ length: 101 }, () => ({ conversationId: withAlice.id, seq: 1 }))),
      ),
    ).toBe('BAD_REQUEST');
    expect(await codeOf(many([{ conversationId: 'not-an-id', seq: 1 }]))).toBe('BAD_REQUEST');
    expect(
      await codeOf(
        many([
          { conversationId: withAlice.id, seq: 1 },
          { conversationId: withEve.id, seq: 3 }, // past the newest
        ]),
      ),
    ).toBe('BAD_REQUEST');
    expect(await positions(bob, withAlice.id)).toMatchObject({ deliveredSeq: 0 });
    for (const a of [alice, bob, eve]) expect(await receiptsTo(a)).toEqual([]);

    // A conversation I am not in is left out, as one that does not exist (a seq past its newest
    // message is not refused either: that would tell how far it goes); the others are written.
    expect(
      await many([
        { conversationId: notMine.id, seq: 5 },
        { conversationId: withAlice.id, seq: 1 },
        { conversationId: withEve.id, seq: 2 },
        { conversationId: group.id, seq: 2 },
        { conversationId: withEve.id, seq: 1 }, // the same conversation again: its highest counts
      ]),
    ).toEqual({
      marked: [
        { conversationId: withAlice.id, deliveredSeq: 1, readSeq: 0 },
        { conversationId: withEve.id, deliveredSeq: 2, readSeq: 0 },
        { conversationId: group.id, deliveredSeq: 2, readSeq: 0 },
      ],
    });
    expect(await positions(alice, withAlice.id)).toMatchObject({ deliveredSeq: 1 });
    expect(await positions(eve, withEve.id)).toMatchObject({ deliveredSeq: 2 });
    expect(await positions(eve, group.id)).toMatchObject({ deliveredSeq: 2 });
    // Told once each: my devices of every move, each sender of the conversations their messages
    // are in, and nobody anything of the conversation I am not in.
    const receipt = (conversationId: string, deliveredSeq: number) => ({
      conversationId,
      userId: bob.userId,
      deliveredSeq,
      readSeq: 0,
    });
    expect(byConversation((await receiptsTo(bob)) as { conversationId: string }[])).toEqual(
      byConversation([receipt(withAlice.id, 1), receipt(withEve.id, 2), receipt(group.id, 2)]),
    );
    expect(byConversation((await receiptsTo(alice)) as { conversationId: string }[])).toEqual(
      byConversation([receipt(withAlice.id, 1), receipt(group.id, 2)]),
    );
    expect(byConversation((await receiptsTo(eve)) as { conversationId: string }[])).toEqual(
      byConversation([receipt(withEve.id, 2), receipt(group.id, 2)]),
    );
    // …and live: Alice's device was woken for both of hers.
    const live = [
      (await aliceStream.next('receipt')).event,
      (await aliceStream.next('receipt')).event,
    ];
    expect(byConversation(live)).toMatchObject(
      byConversation([receipt(withAlice.id, 1), receipt(group.id, 2)]),
    );

    const rest = await fetch(`${t.server.url}/api/v1/messages/delivered`, {
      method: 'POST',
      headers: { authorization: `Bearer ${bob.accessToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ marks: [{ conversationId: withAlice.id, seq: 1 }] }),
    });
    expect(rest.status).toBe(200);
    expect(await rest.json()).toEqual({
      marked: [{ conversationId: withAlice.id, deliveredSeq: 1, readSeq: 0 }],
    });
    // Nothing new there: nobody told again.
    expect(await receiptsTo(alice)).toHaveLength(2);
    await aliceStream.close();
  });

  it('delivered marks in several conversations: a write failing in the middle leaves none of them written', async () => {
    const [alice, bob, eve] = [await registerUser(t), await registerUser(t), await registerUser(t)];
    const direct = (a: Account, b: Account) =>
      api(a).conversations.create.mutate({ kind: 'direct', userId: b.userId });
    const [withAlice, withEve] = [await direct(alice, bob), await direct(eve, bob)];
    await send(alice, withAlice.id, 'one');
    await send(eve, withEve.id, 'two');
    const [first, second] = [withAlice.id, withEve.id].sort() as [string, string];
    const marks = [first, second].map((conversationId) => ({ conversationId, seq: 1 }));
    const positions = async (id: string) =>
      (await api(bob).conversations.members.query({ id })).members.find(
        (m) => m.userId === bob.userId,
      );

    // The database refuses the receipts of the second conversation (by id, and as listed): by
    // then the positions (one statement) were written, and on the way of one transaction per
    // conversation the first conversation's mark and receipts were committed.
    const db = t.server.infra.ports.db;
    const trigger = sql.id(`receipt_fails_${randomBytes(6).toString('hex')}`);
    const refused = sql`NEW.type = 'receipt' AND NEW.payload LIKE ${sql.lit(`%${second}%`)}`;
    await (
      t.server.infra.ports.dialect === 'mysql'
        ? sql`CREATE TRIGGER ${trigger} BEFORE INSERT ON user_events FOR EACH ROW
          BEGIN
            IF ${refused} THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'provoked'; END IF;
          END`
        : sql`CREATE TRIGGER ${trigger} BEFORE INSERT ON user_events WHEN ${refused}
          BEGIN SELECT RAISE(ABORT, 'provoked'); END`
    ).execute(db);
    try {
      expect(await codeOf(api(bob).messages.markDeliveredMany.mutate({ marks }))).toBe(
        'INTERNAL_SERVER_ERROR',
      );
    } finally {
      await sql`DROP TRIGGER ${trigger}`.execute(db);
    }
    expect(await positions(first)).toMatchObject({ deliveredSeq: 0 });
    expect(await positions(second)).toMatchObject({ deliveredSeq: 0 });
    for (const a of [alice, bob, eve]) expect(await receiptsTo(a)).toEqual([]);

    // Asked again, it goes through whole.
    expect(await api(bob).messages.markDeliveredMany.mutate({ marks })).toEqual({
      marked: [first, second].map((conversationId) => ({
        conversationId,
        deliveredSeq: 1,
        readSeq: 0,
      })),
    });
    expect(await receiptsTo(bob)).toHaveLength(2);
    expect(await receiptsTo(alice)).toHaveLength(1);
    expect(await receiptsTo(eve)).toHaveLength(1);
  });

  it('read receipts off: others see delivered only, my devices still see my read position', async () => {
    const [alice, bob] = [await registerUser(t), await registerUser(t)];
    const chat = await api(alice).conversations.create.mutate({
      kind: 'direct',
      userId: bob.userId,
    });
    await send(alice, chat.id, 'seen?');
    await api(bob).users.updatePrivacy.mutate({ readReceipts: false });
    const aliceStream = await openStream(t, alice.accessToken);
    const bobStream = await openStream(t, bob.accessToken);
    await api(bob).messages.markRead.mutate({ conversationId: chat.id, seq: 1 });
    expect((await aliceStream.next('receipt')).event).toMatchObject({
      userId: bob.userId,
      deliveredSeq: 1,
      readSeq: null,
    });
    expect((await bobStream.next('receipt')).event).toMatchObject({ deliveredSeq: 1, readSeq: 1 });
    await aliceStream.close();
    await bobStream.close();
  });

  it('disappearing messages carry expiresAt and are purged with an event', async () => {
    const [alice, bob] = [await registerUser(t), await registerUser(t)];
    const chat = await api(alice).conversations.create.mutate({
      kind: 'direct',
      userId: bob.userId,
    });
    expect(
      await codeOf(api(bob).conversations.update.mutate({ id: chat.id, title: 'no titles' })),
    ).toBe('BAD_REQUEST');
    await api(bob).conversations.update.mutate({ id: chat.id, disappearSeconds: 60 });
    const sent = await send(alice, chat.id, 'gone soon');
    expect(Date.parse(sent.expiresAt!) - Date.parse(sent.createdAt)).toBe(60_000);
    const named = {
      conversationId: chat.id,
      seq: sent.seq,
      contentType: 'text/plain',
      ciphertext: b64('gone soon!'),
      clientEditId: 'edit-gone-soon',
    };
    await api(alice).messages.edit.mutate(named);
    // From a cursor, not cold: a cold stream starts where its first read finds the head, which
    // on a busy MariaDB can come after the purge below has written.
    const { cursor } = await api(bob).sync.snapshot.query();
    const bobStream = await openStream(t, bob.accessToken, cursor);

    expect(await purgeAfter(61_000)).toBeGreaterThanOrEqual(1);
    expect((await bobStream.next('messages.removed')).event).toMatchObject({
      conversationId: chat.id,
      seqs: [sent.seq],
      reason: 'expired',
    });
    // Its edit ids went with it: the retry finds no message.
    const edits = await t.server.infra.ports.db
      .selectFrom('message_edits')
      .select('seq')
      .where('conversation_id', '=', chat.id)
      .execute();
    expect(edits).toEqual([]);
    expect(await codeOf(api(alice).messages.edit.mutate(named))).toBe('NOT_FOUND');
    expect((await api(bob).messages.history.query({ conversationId: chat.id })).messages).toEqual(
      [],
    );
    await bobStream.close();
  });

  it('past its timer and before its purge, a message reads as gone: history, stream, preview, reactions', async () => {
    const [alice, bob] = [await registerUser(t), await registerUser(t)];
    await befriend(t, alice, bob);
    const chat = await api(alice).conversations.create.mutate({
      kind: 'direct',
      userId: bob.userId,
    });
    const { cursor } = await api(bob).sync.snapshot.query();
    await api(bob).conversations.update.mutate({ id: chat.id, disappearSeconds: 60 });
    const sent = await send(alice, chat.id, 'gone soon');
    offsetMs = 61_000; // no purge runs: the row is still there
    try {
      // A resend (the answer was lost) answers what was sent, its time past, and stores nothing.
      const again = await sendText(t, alice, chat.id, 'gone soon', sent.clientMessageId);
      expect([again.seq, again.expiresAt]).toEqual([sent.seq, sent.expiresAt]);
      expect((await api(bob).messages.history.query({ conversationId: chat.id })).messages).toEqual(
        [],
      );
      const polled = await api(bob).sync.poll.query({ after: cursor });
      expect(
        polled.events.filter((e) => e.event.type === 'message.new').map((e) => e.event.type),
      ).toEqual([]);
      const snapshot = await api(bob).sync.snapshot.query();
      const entry = snapshot.conversations.find((c) => c.conversation.id === chat.id)!;
      expect(entry.lastMessage).toBeNull();
      expect(
        await codeOf(
          api(bob).messages.react.mutate({
            conversationId: chat.id,
            seq: sent.seq,
            emoji: '👍',
            on: true,
          }),
        ),
      ).toBe('NOT_FOUND');
    } finally {
      offsetMs = 0;
    }
    // Before its time it read as any other.
    expect(
      (await api(bob).messages.history.query({ conversationId: chat.id })).messages.map(
        (m) => m.seq,
      ),
    ).toEqual([sent.seq]);
  });

  it('two expiry runs at once (a run that outlived its lock) tell a removal once', async () => {
    const [alice, bob] = [await registerUser(t), await registerUser(t)];
    await befriend(t, alice, bob);
    const chat = await api(alice).conversations.create.mutate({
      kind: 'direct',
      userId: bob.userId,
    });
    await api(bob).conversations.update.mutate({ id: chat.id, disappearSeconds: 60 });
    await send(alice, chat.id, 'gone soon');
    const { cursor } = await api(bob).sync.snapshot.query();
    offsetMs = 61_000;
    try {
      const ctx = { ports: t.server.infra.ports, settings: t.server.settings } as Parameters<
        typeof purgeExpiredMessages
      >[0];
      await Promise.all([purgeExpiredMessages(ctx), purgeExpiredMessages(ctx)]);
    } finally {
      offsetMs = 0;
    }
    const events = (await api(bob).sync.poll.query({ after: cursor })).events.filter(
      (e) => e.event.type === 'messages.removed' && e.event.conversationId === chat.id,
    );
    expect(events).toHaveLength(1);
  });

  it('an expiry is told to each member only of the messages their history shows', async () => {
    const { owner, ann, ben, room } = await team();
    await api(owner).conversations.update.mutate({ id: room.id, disappearSeconds: 60 });
    const first = await send(ann, room.id, 'before cy');
    const [cy, dan] = [await registerUser(t), await registerUser(t)];
    for (const joiner of [cy, dan]) await befriend(t, owner, joiner);
    await api(owner).conversations.addMembers.mutate({ id: room.id, userIds: [cy.userId] });
    const second = await send(ann, room.id, 'before dan');
    await api(owner).conversations.addMembers.mutate({ id: room.id, userIds: [dan.userId] });
    const { cursor: danCursor } = await api(dan).sync.snapshot.query();
    const benStream = await openStream(t, ben.accessToken);
    const cyStream = await openStream(t, cy.accessToken);
    const danStream = await openStream(t, dan.accessToken);

    expect(await purgeAfter(61_000)).toBeGreaterThanOrEqual(2);
    const removed = async (stream: typeof benStream) => {
      const { event } = await stream.next('messages.removed');
      return { ...event, seqs: [...event.seqs].sort((a, b) => a - b) };
    };
    const told = (seqs: number[]) => ({
      type: 'messages.removed',
      conversationId: room.id,
      seqs,
      reason: 'expired',
    });
    expect(await removed(benStream)).toEqual(told([first.seq, second.seq]));
    expect(await removed(cyStream)).toEqual(told([second.seq]));

    // Dan saw neither: his stream has no event of it, live or read back.
    const after = await send(ann, room.id, 'dan is in');
    const toDan: string[] = [];
    for (;;) {
      const { event } = await danStream.events.next();
      toDan.push(event.type);
      if (event.type === 'message.new' && event.message.seq === after.seq) break;
    }
    expect(toDan).not.toContain('messages.removed');
    const polled = await api(dan).sync.poll.query({ after: danCursor });
    expect(polled.events.map((e) => e.event.type)).toEqual(['message.new']);
    await Promise.all([benStream, cyStream, danStream].map((s) => s.close()));
  });

  it('the REST shim: bytes as base64, snapshot and a polling read of the stream', async () => {
    const [alice, bob] = [await registerUser(t), await registerUser(t)];
    const rest = (a: Account, method: string, path: string, body?: unknown) =>
      fetch(`${t.server.url}/api/v1${path}`, {
        method,
        headers: { authorization: `Bearer ${a.accessToken}`, 'content-type': 'application/json' },
        ...(body ? { body: JSON.stringify(body) } : {}),
      }).then(async (r) => ({ status: r.status, body: (await r.json()) as RestBody }));

    const start = (await rest(bob, 'GET', '/sync/snapshot')).body.cursor!;
    const chat = await rest(alice, 'POST', '/conversations', {
      kind: 'direct',
      userId: bob.userId,
    });
    expect(chat.status).toBe(200);
    const sent = await rest(alice, 'POST', `/conversations/${chat.body.id!}/messages`, {
      clientMessageId: cid(),
      contentType: 'text/plain',
      ciphertext: b64('over REST'),
    });
    expect(sent.body).toMatchObject({ seq: 1, ciphertext: b64('over REST') });
    const page = await rest(bob, 'GET', `/conversations/${chat.body.id!}/messages?limit=10`);
    expect(page.body.messages).toHaveLength(1);
    const polled = await rest(bob, 'GET', `/sync/events?after=${start}`);
    expect(polled.body.events?.map((e) => e.event.type)).toEqual([
      'conversation.joined',
      'message.new',
    ]);
    const edited = await rest(alice, 'PATCH', `/conversations/${chat.body.id!}/messages/1`, {
      contentType: 'text/plain',
      ciphertext: b64('edited over REST'),
    });
    expect(edited.status).toBe(200);
    expect(edited.body.editedAt).toEqual(expect.any(String));
    // Every route with the seq in its path, whatever its method: the path's "1" is a number.
    const chatPath = `/conversations/${chat.body.id!}`;
    const reacted = await rest(bob, 'POST', `${chatPath}/messages/1/reactions`, {
      emoji: '👍',
      on: true,
    });
    expect(reacted.status).toBe(200);
    expect((await rest(alice, 'PUT', `${chatPath}/pins/1`, { pinned: true })).status).toBe(200);
    const pins = await rest(bob, 'GET', `${chatPath}/pins`);
    expect(pins.body.messages).toHaveLength(1);
    expect((await rest(bob, 'POST', `${chatPath}/messages/1/hide`)).status).toBe(200);
    // Not base64, no bytes, or a spelling of a byte other than the one it would come back in.
    for (const ciphertext of ['***', '', 'QR==']) {
      const bad = await rest(alice, 'POST', `/conversations/${chat.body.id!}/messages`, {
        clientMessageId: cid(),
        contentType: 'text/plain',
        ciphertext,
      });
      expect(bad.status).toBe(400);
    }
    const history = await rest(alice, 'GET', `/conversations/${chat.body.id!}/messages?limit=10`);
    expect(history.body.messages).toHaveLength(1); // nothing written
  });

  it('the REST shim: a POST without a body is its path; broken JSON is a 400; no coercion leaks into tRPC', async () => {
    const { owner, ann, room } = await team();
    const joiner = await registerUser(t);
    const post = (a: Account, path: string, body?: string) =>
      fetch(`${t.server.url}/api/v1${path}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${a.accessToken}`, 'content-type': 'application/json' },
        ...(body === undefined ? {} : { body }),
      });
    const { code } = await api(owner).conversations.createInvite.mutate({ id: room.id });
    const joined = await post(joiner, `/invites/${code}/join`);
    expect(joined.status).toBe(200);
    expect(
      (await api(joiner).conversations.members.query({ id: room.id })).members.map((m) => m.userId),
    ).toContain(joiner.userId);

    const sent = await send(ann, room.id, 'one');
    const broken = await post(ann, `/conversations/${room.id}/messages`, '{"clientMessageId":');
    expect(broken.status).toBe(400);
    // A number as a string in a JSON body is refused: JSON has numbers.
    const stringSeq = await post(
      ann,
      `/conversations/${room.id}/read`,
      JSON.stringify({ seq: String(sent.seq) }),
    );
    expect(stringSeq.status).toBe(400);
    expect((await api(ann).conversations.get.query({ id: room.id })).lastSeq).toBe(sent.seq);

    // A query string's numbers are read as numbers, for that request only: the shared schemas
    // must not start coercing tRPC's input too.
    const page = await fetch(
      `${t.server.url}/api/v1/conversations/${room.id}/messages?before=${sent.seq + 1}&limit=10`,
      { headers: { authorization: `Bearer ${ann.accessToken}` } },
    );
    expect(page.status).toBe(200);
    expect(((await page.json()) as RestBody).messages).toHaveLength(1);
    const asText = (n: number) => String(n) as unknown as number;
    expect(
      await codeOf(
        api(ann).messages.history.query({ conversationId: room.id, before: asText(sent.seq + 1) }),
      ),
    ).toBe('BAD_REQUEST');
    expect(
      await codeOf(
        api(joiner).messages.markRead.mutate({ conversationId: room.id, seq: asText(1) }),
      ),
    ).toBe('BAD_REQUEST');
  });

  it('a group picture: admins upload it (bytes over REST), members see it, it goes with the group', async () => {
    const { owner, ann, room } = await team();
    const upload = (who: Account, body: Uint8Array) =>
      fetch(`${t.server.url}/api/v1/conversations/${room.id}/avatar`, {
        method: 'PUT',
        headers: { authorization: `Bearer ${who.accessToken}`, 'content-type': 'image/png' },
        body,
      });
    expect((await upload(ann, PNG)).status).toBe(403);
    expect((await upload(owner, Buffer.from('not an image'))).status).toBe(415);
    expect((await api(ann).conversations.get.query({ id: room.id })).avatarUrl).toBeNull();

    const annStream = await openStream(t, ann.accessToken);
    const res = await upload(owner, PNG);
    expect(res.status).toBe(200);
    const { avatarUrl } = (await res.json()) as { avatarUrl: string };
    expect(avatarUrl).toMatch(new RegExp(`^/avatars/${room.id}/[0-9a-f]{32}\\.png$`));
    expect((await annStream.next('conversation.updated')).event.conversation.avatarUrl).toBe(
      avatarUrl,
    );
    const served = await fetch(`${t.server.url}${avatarUrl}`);
    expect(Buffer.from(await served.arrayBuffer())).toEqual(PNG);

    expect(await codeOf(api(ann).conversations.removeAvatar.mutate({ id: room.id }))).toBe(
      'FORBIDDEN',
    );
    const second = (await (await upload(owner, PNG)).json()) as { avatarUrl: string };
    expect((await fetch(`${t.server.url}${avatarUrl}`)).status).toBe(404);
    await api(owner).conversations.delete.mutate({ id: room.id });
    expect((await fetch(`${t.server.url}${second.avatarUrl}`)).status).toBe(404);
    await annStream.close();
  });

  it("a group's picture goes with it when the last member leaves, or deletes their account", async () => {
    const withPicture = async (owner: Account) => {
      const room = await api(owner).conversations.create.mutate({ kind: 'group', title: 'Solo' });
      const res = await fetch(`${t.server.url}/api/v1/conversations/${room.id}/avatar`, {
        method: 'PUT',
        headers: { authorization: `Bearer ${owner.accessToken}`, 'content-type': 'image/png' },
        body: PNG,
      });
      const { avatarUrl } = (await res.json()) as { avatarUrl: string };
      expect((await fetch(`${t.server.url}${avatarUrl}`)).status).toBe(200);
      return { room, avatarUrl };
    };
    const leaver = await registerUser(t);
    const left = await withPicture(leaver);
    await api(leaver).conversations.leave.mutate({ id: left.room.id });
    expect(await codeOf(api(leaver).conversations.get.query({ id: left.room.id }))).toBe(
      'NOT_FOUND',
    );
    expect((await fetch(`${t.server.url}${left.avatarUrl}`)).status).toBe(404);

    const deleter = await registerUser(t);
    const deleted = await withPicture(deleter);
    await api(deleter).me.delete.mutate({ password: PASSWORD });
    expect((await fetch(`${t.server.url}${deleted.avatarUrl}`)).status).toBe(404);
  });

  it('opening a direct conversation tries again once after a unique violation, then fails INTERNAL', async () => {
    const [ann, ben] = [await registerUser(t), await registerUser(t)];
    const db = t.server.infra.ports.db;
    // Every conversation insert collides, yet no conversation with the key is found: no race
    // explains that (a lost race's winner is found on the second look). Since ids are lower
    // case at the edge nothing reaches this through the API, so it is staged on the db port.
    const duplicate = Object.assign(new Error("Duplicate entry for key 'direct_key'"), {
      code: 'ER_DUP_ENTRY',
      errno: 1062,
    });
    let inserts = 0;
    const transaction = db.transaction.bind(db);
    const spy = vi.spyOn(db, 'transaction').mockImplementation(() => {
      const builder = transaction();
      const execute: typeof builder.execute = (work) =>
        builder.execute((trx) =>
          work(
            new Proxy(trx, {
              get(target, prop) {
                if (prop === 'insertInto')
                  return (table: string) => {
                    if (table !== 'conversations') return target.insertInto(table as never);
                    // Past a few, it would go on for ever: end it so the test fails, not hangs.
                    if (++inserts > 5) throw new Error('still retrying');
                    throw duplicate;
                  };
                const value: unknown = Reflect.get(target, prop, target);
                if (typeof value !== 'function') return value;
                return (value as (...args: unknown[]) => unknown).bind(target);
              },
            }),
          ),
        );
      return { execute } as unknown as typeof builder;
    });
    try {
      const opened = api(ann).conversations.create.mutate({ kind: 'direct', userId: ben.userId });
      expect(await codeOf(opened)).toBe('INTERNAL_SERVER_ERROR');
    } finally {
      spy.mockRestore();
    }
    expect(inserts).toBe(2);
    const chat = await api(ann).conversations.create.mutate({ kind: 'direct', userId: ben.userId });
    expect(chat.peerId).toBe(ben.userId);
  });
});

describe(`disappearing messages go on time, by the server's own loop (${backendLabel})`, () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startServer({ messageExpiryCheckMs: 100 });
  });
  afterAll(() => t.stop());

  it('a message with a one-second timer is removed about a second after it was sent', async () => {
    const [alice, bob] = [await registerUser(t), await registerUser(t)];
    const api = (a: Account) => clientWithToken(t, a.accessToken).api;
    const chat = await api(alice).conversations.create.mutate({
      kind: 'direct',
      userId: bob.userId,
    });
    const kept = await sendText(t, bob, chat.id, 'sent before the timer');
    const bobStream = await openStream(t, bob.accessToken);
    const aliceStream = await openStream(t, alice.accessToken);
    await api(alice).conversations.update.mutate({ id: chat.id, disappearSeconds: 1 });
    const sent = await sendText(t, alice, chat.id, 'gone in a second');
    const expiresAt = Date.parse(sent.expiresAt!);

    for (const stream of [bobStream, aliceStream]) {
      // Nobody runs the jobs here: only the loop can purge it, and well before a jobs interval.
      const { event } = await stream.next('messages.removed', 10_000);
      expect(event).toEqual({
        type: 'messages.removed',
        conversationId: chat.id,
        seqs: [sent.seq],
        reason: 'expired',
      });
    }
    expect(Date.now()).toBeGreaterThanOrEqual(expiresAt);
    const history = await api(bob).messages.history.query({ conversationId: chat.id });
    expect(history.messages.map((m) => m.seq)).toEqual([kept.seq]);
    await bobStream.close();
    await aliceStream.close();
  });
});

describe(`a conversation's invites are bounded (${backendLabel})`, () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startServer({ ipRateLimit: { points: 10_000, durationSeconds: 60 } });
  });
  afterAll(() => t.stop());

  it(`at most ${MAX_LIVE_INVITES} work at once: one more is refused until one is revoked`, async () => {
    const owner = await registerUser(t);
    const conversations = clientWithToken(t, owner.accessToken).api.conversations;
    const room = await conversations.create.mutate({
      kind: 'channel',
      title: 'News',
      memberIds: [],
    });
    const made = [];
    for (let i = 0; i < MAX_LIVE_INVITES; i++)
      made.push(await conversations.createInvite.mutate({ id: room.id }));
    expect(await codeOf(conversations.createInvite.mutate({ id: room.id }))).toBe('CONFLICT');
    await conversations.revokeInvite.mutate({ code: made[0]!.code });
    await conversations.createInvite.mutate({ id: room.id });
    const { invites } = await conversations.invites.query({ id: room.id });
    expect(invites).toHaveLength(MAX_LIVE_INVITES + 1); // the revoked one is still listed
    expect(invites.filter((i) => !i.revoked)).toHaveLength(MAX_LIVE_INVITES);
  });
});
