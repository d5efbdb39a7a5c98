import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { befriend, clientWithToken, registerUser, type Account } from './helpers/accounts';
import { b64, sendText } from './helpers/messaging';
import { backendLabel } from './helpers/env';
import { defaultConfig } from '../src/index';
import { racedBy as raced } from './helpers/raced';
import { startServer, type TestServer } from './helpers/startServer';
import { codeOf } from './helpers/errors';

type Ref = { conversationId: string; seq: number };

/** Distinct emoji, as many as asked for (😀, 😁, …). */
const emoji = (i: number) => String.fromCodePoint(0x1f600 + i);

/** How a direct call of a procedure ended: 'ok', or the code it was refused with. */
const outcomeOf = (p: Promise<unknown>) =>
  p.then(
    () => 'ok',
    (e: { appCode?: string; code?: string }) => e.appCode ?? e.code ?? 'thrown',
  );

// Edits, reactions and pins check the message, then write it in a transaction: what commits in
// between must not be undone by the write. These tests put the competing change exactly there.
describe(`message changes that race a deletion, an expiry or each other (${backendLabel})`, () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startServer({
      messaging: {
        ...defaultConfig().messaging,
        sendLimit: { points: 100_000, durationSeconds: 60 },
      },
    });
  });
  afterAll(() => t.stop());

  const api = (a: Account) => clientWithToken(t, a.accessToken).api;
  const send = (a: Account, conversationId: string, text: string) =>
    sendText(t, a, conversationId, text);
  /** An owner and two members in a fresh group. */
  const team = async () => {
    const [owner, ann, ben] = [await registerUser(t), await registerUser(t), await registerUser(t)];
    await befriend(t, owner, ann);
    await befriend(t, owner, ben);
    const room = await api(owner).conversations.create.mutate({
      kind: 'group',
      title: 'Room',
      memberIds: [ann.userId, ben.userId],
    });
    return { owner, ann, ben, room };
  };

  const racedBy = (who: Account, between: () => Promise<unknown>) => raced(t, who, between);

  const reactionRows = (conversationId: string, seq: number) =>
    t.server.infra.ports.db
      .selectFrom('reactions')
      .select(['user_id', 'emoji'])
      .where('conversation_id', '=', conversationId)
      .where('seq', '=', seq)
      .execute();

  it('an edit whose message is deleted between its checks and its write is refused; the tombstone stays empty', async () => {
    const { owner, ann, room } = await team();
    const sent = await send(ann, room.id, 'before');
    const ref = { conversationId: room.id, seq: sent.seq };
    const edit = (await racedBy(ann, () => api(owner).messages.delete.mutate(ref))).messages.edit({
      ...ref,
      contentType: 'text/plain',
      ciphertext: b64('resurrected'),
    });
    expect(await outcomeOf(edit)).toBe('BAD_REQUEST');
    const [shown] = (await api(ann).messages.history.query({ conversationId: room.id })).messages;
    expect(shown).toMatchObject({ seq: sent.seq, ciphertext: null, editedAt: null });
    expect(shown!.deletedAt).not.toBeNull();
  });

  it('a reaction whose message is deleted between its checks and its write is refused and not stored', async () => {
    const { owner, ann, ben, room } = await team();
    const sent = await send(ann, room.id, 'react to me');
    const ref = { conversationId: room.id, seq: sent.seq };
    const reacting = (
      await racedBy(ben, () => api(owner).messages.delete.mutate(ref))
    ).messages.react({
      ...ref,
      emoji: '👍',
      on: true,
    });
    expect(await outcomeOf(reacting)).toBe('BAD_REQUEST');
    expect(await reactionRows(room.id, sent.seq)).toEqual([]);
  });

  it('a pin whose message is deleted between its checks and its write is refused and not listed', async () => {
    const { owner, ann, room } = await team();
    const sent = await send(ann, room.id, 'pin me');
    const ref = { conversationId: room.id, seq: sent.seq };
    const pinning = (await racedBy(owner, () => api(ann).messages.delete.mutate(ref))).messages.pin(
      {
        ...ref,
        pinned: true,
      },
    );
    expect(await outcomeOf(pinning)).toBe('BAD_REQUEST');
    expect((await api(owner).messages.pins.query({ conversationId: room.id })).messages).toEqual(
      [],
    );
  });

  type Caller = Awaited<ReturnType<typeof racedBy>>;

  /** The types of the events on `who`'s stream after `cursor`. */
  const streamTypes = async (who: Account, cursor: string) =>
    (await api(who).sync.poll.query({ after: cursor, limit: 500 })).events.map(
      ({ event }) => event.type,
    );

  it("a change to a message raced by a member's removal is not told to the removed member", async () => {
    const changes = {
      edit: (c: Caller, ref: Ref) =>
        c.messages.edit({ ...ref, contentType: 'text/plain', ciphertext: b64('secret edit') }),
      react: (c: Caller, ref: Ref) => c.messages.react({ ...ref, emoji: '👍', on: true }),
      pin: (c: Caller, ref: Ref) => c.messages.pin({ ...ref, pinned: true }),
      delete: (c: Caller, ref: Ref) => c.messages.delete(ref),
    };
    const toldAs = {
      edit: 'message.updated',
      react: 'reaction',
      pin: 'pin',
      delete: 'message.updated',
    };
    for (const name of ['edit', 'react', 'pin', 'delete'] as const) {
      const { owner, ann, ben, room } = await team();
      const sent = await send(ann, room.id, 'before');
      const ref = { conversationId: room.id, seq: sent.seq };
      const [bens, anns] = [
        await api(ben).sync.snapshot.query(),
        await api(ann).sync.snapshot.query(),
      ];
      const removeBen = () =>
        api(owner).conversations.removeMember.mutate({ id: room.id, userId: ben.userId });
      const changing = changes[name](await racedBy(name === 'pin' ? owner : ann, removeBen), ref);
      expect([name, await outcomeOf(changing)]).toEqual([name, 'ok']);
      // Told to those still in the room, not to Ben, removed just before it was written.
      expect(await streamTypes(ann, anns.cursor)).toContain(toldAs[name]);
      expect([name, await streamTypes(ben, bens.cursor)]).toEqual([name, ['conversation.left']]);
    }
  });

  it("an admin demoted between the checks and the write neither deletes nor pins others' messages", async () => {
    const { owner, ann, ben, room } = await team();
    const sent = await send(ben, room.id, 'mine');
    const ref = { conversationId: room.id, seq: sent.seq };
    const demote = (role: 'admin' | 'member') => () =>
      api(owner).conversations.setRole.mutate({ id: room.id, userId: ann.userId, role });
    await demote('admin')();
    const deleting = (await racedBy(ann, demote('member'))).messages.delete(ref);
    expect(await outcomeOf(deleting)).toBe('FORBIDDEN');
    await demote('admin')();
    const pinning = (await racedBy(ann, demote('member'))).messages.pin({ ...ref, pinned: true });
    expect(await outcomeOf(pinning)).toBe('FORBIDDEN');
    const [shown] = (await api(ben).messages.history.query({ conversationId: room.id })).messages;
    expect([shown!.deletedAt, shown!.ciphertext]).toEqual([null, b64('mine')]);
    expect((await api(ben).messages.pins.query({ conversationId: room.id })).messages).toEqual([]);
  });

  it('a member restricted between the checks and the write neither edits nor reacts', async () => {
    const { owner, ann, ben, room } = await team();
    const mine = await send(ann, room.id, 'as sent');
    const bens = await send(ben, room.id, 'his');
    const restrict = (role: 'member' | 'restricted') => () =>
      api(owner).conversations.setRole.mutate({ id: room.id, userId: ann.userId, role });
    const editing = (await racedBy(ann, restrict('restricted'))).messages.edit({
      conversationId: room.id,
      seq: mine.seq,
      contentType: 'text/plain',
      ciphertext: b64('changed'),
    });
    expect(await outcomeOf(editing)).toBe('FORBIDDEN');
    await restrict('member')();
    const reacting = (await racedBy(ann, restrict('restricted'))).messages.react({
      conversationId: room.id,
      seq: bens.seq,
      emoji: '👍',
      on: true,
    });
    expect(await outcomeOf(reacting)).toBe('FORBIDDEN');
    const shown = (await api(ben).messages.history.query({ conversationId: room.id })).messages;
    expect(shown.map((m) => [m.editedAt, m.ciphertext])).toEqual([
      [null, b64('his')], // newest first
      [null, b64('as sent')],
    ]);
    expect(await reactionRows(room.id, bens.seq)).toEqual([]);
  });

  it('an admin demoted between the checks and the write makes no invite, revokes none and sets no picture', async () => {
    const { owner, ann, room } = await team();
    const demote = (role: 'admin' | 'member') => () =>
      api(owner).conversations.setRole.mutate({ id: room.id, userId: ann.userId, role });
    await demote('admin')();
    const inviting = (await racedBy(ann, demote('member'))).conversations.createInvite({
      id: room.id,
    });
    expect(await outcomeOf(inviting)).toBe('FORBIDDEN');
    const invites = async () =>
      (await api(owner).conversations.invites.query({ id: room.id })).invites;
    expect(await invites()).toEqual([]);
    const { code } = await api(owner).conversations.createInvite.mutate({ id: room.id });
    await demote('admin')();
    const revoking = (await racedBy(ann, demote('member'))).conversations.revokeInvite({ code });
    expect(await outcomeOf(revoking)).toBe('FORBIDDEN');
    expect(await invites()).toMatchObject([{ code, revoked: false }]);
    // Setting and removing the picture share the write checked here.
    await demote('admin')();
    const unsetting = (await racedBy(ann, demote('member'))).conversations.removeAvatar({
      id: room.id,
    });
    expect(await outcomeOf(unsetting)).toBe('FORBIDDEN');
  });

  it('an edit whose message expired between its checks and its write is NOT_FOUND, not a 500', async () => {
    const { ann, room } = await team();
    const sent = await send(ann, room.id, 'short-lived');
    const ref = { conversationId: room.id, seq: sent.seq };
    // What the expiry job does to a message whose time is up (purgeExpiredMessages).
    const purge = () =>
      t.server.infra.ports.db
        .deleteFrom('messages')
        .where('conversation_id', '=', room.id)
        .where('seq', '=', sent.seq)
        .execute();
    const edit = (await racedBy(ann, purge)).messages.edit({
      ...ref,
      contentType: 'text/plain',
      ciphertext: b64('too late'),
    });
    expect(await outcomeOf(edit)).toBe('NOT_FOUND');
  });

  it('the 20-reactions cap holds against a reaction of mine committed between the check and the write', async () => {
    const { ann, ben, room } = await team();
    const sent = await send(ann, room.id, 'so many feelings');
    const ref = { conversationId: room.id, seq: sent.seq };
    for (let i = 0; i < 19; i++)
      await api(ben).messages.react.mutate({ ...ref, emoji: emoji(i), on: true });
    const twentieth = () => api(ben).messages.react.mutate({ ...ref, emoji: emoji(19), on: true });
    const twentyFirst = (await racedBy(ben, twentieth)).messages.react({
      ...ref,
      emoji: emoji(20),
      on: true,
    });
    expect(await outcomeOf(twentyFirst)).toBe('BAD_REQUEST');
    expect(await reactionRows(room.id, sent.seq)).toHaveLength(20);
  });

  it('reactions of mine at the same time never go past the cap', async () => {
    const { ann, ben, room } = await team();
    const sent = await send(ann, room.id, 'at once');
    const ref = { conversationId: room.id, seq: sent.seq };
    for (let i = 0; i < 18; i++)
      await api(ben).messages.react.mutate({ ...ref, emoji: emoji(i), on: true });
    const bens = api(ben);
    const outcomes = await Promise.all(
      [18, 19, 20, 21, 22].map((i) =>
        codeOf(bens.messages.react.mutate({ ...ref, emoji: emoji(i), on: true })),
      ),
    );
    expect(outcomes.filter((o) => o === 'ok')).toHaveLength(2);
    expect(outcomes.filter((o) => o !== 'ok')).toEqual([
      'BAD_REQUEST',
      'BAD_REQUEST',
      'BAD_REQUEST',
    ]);
    expect(await reactionRows(room.id, sent.seq)).toHaveLength(20);
  });

  it('pins: the same message pinned twice at once is pinned once; unpinned twice at once, told once', async () => {
    const { owner, ann, ben, room } = await team();
    const { cursor } = await api(ben).sync.snapshot.query();
    // Two admins, each on their own connection, so the server runs the pair side by side.
    await api(owner).conversations.setRole.mutate({
      id: room.id,
      userId: ann.userId,
      role: 'admin',
    });
    const [ownerApi, annApi] = [api(owner), api(ann)];
    const rounds = 8;
    const seqs: number[] = [];
    for (let i = 0; i < rounds; i++) {
      const { seq } = await send(ben, room.id, `pin ${i}`);
      seqs.push(seq);
      const ref = { conversationId: room.id, seq };
      for (const pinned of [true, false]) {
        const outcomes = await Promise.all(
          [ownerApi, annApi].map((a) => codeOf(a.messages.pin.mutate({ ...ref, pinned }))),
        );
        expect(outcomes).toEqual(['ok', 'ok']);
      }
    }
    const { events } = await api(ben).sync.poll.query({ after: cursor, limit: 500 });
    const pins = events.flatMap(({ event }) =>
      event.type === 'pin' ? [`${event.seq}:${event.pinned}`] : [],
    );
    expect(pins).toEqual(seqs.flatMap((seq) => [`${seq}:true`, `${seq}:false`]));
  });

  it('pins: at most 50 per conversation, also when admins pin at the same time; an unpin makes room', async () => {
    const { owner, ann, ben, room } = await team();
    await api(owner).conversations.setRole.mutate({
      id: room.id,
      userId: ann.userId,
      role: 'admin',
    });
    const seqs: number[] = [];
    for (let i = 0; i < 52; i++) seqs.push((await send(ben, room.id, `m${i}`)).seq);
    const pin = (a: Account, seq: number, pinned = true) =>
      codeOf(api(a).messages.pin.mutate({ conversationId: room.id, seq, pinned }));
    for (const seq of seqs.slice(0, 48)) expect(await pin(owner, seq)).toBe('ok');
    // Four at once for the last two places.
    const outcomes = await Promise.all([
      pin(owner, seqs[48]!),
      pin(ann, seqs[49]!),
      pin(owner, seqs[50]!),
      pin(ann, seqs[51]!),
    ]);
    expect(outcomes.sort()).toEqual(['CONFLICT', 'CONFLICT', 'ok', 'ok']);
    const listed = async () =>
      (await api(ben).messages.pins.query({ conversationId: room.id })).messages.map((m) => m.seq);
    const pinned = await listed();
    expect(pinned).toHaveLength(50);
    // Pinning one already pinned is no change, even at the cap.
    expect(await pin(owner, seqs[0]!)).toBe('ok');
    const refused = seqs.slice(48).find((seq) => !pinned.includes(seq))!;
    expect(await pin(owner, refused)).toBe('CONFLICT');
    expect(await pin(owner, seqs[0]!, false)).toBe('ok');
    expect(await pin(owner, refused)).toBe('ok');
    expect(await listed()).toHaveLength(50);
  });

  it('pins: a message I deleted for me is not in my list of pins; the others still see it', async () => {
    const { owner, ann, ben, room } = await team();
    const [one, two] = [await send(ann, room.id, 'one'), await send(ann, room.id, 'two')];
    for (const { seq } of [one, two])
      await api(owner).messages.pin.mutate({ conversationId: room.id, seq, pinned: true });
    await api(ben).messages.deleteForMe.mutate({ conversationId: room.id, seq: one.seq });
    const pinsOf = async (a: Account) =>
      (await api(a).messages.pins.query({ conversationId: room.id })).messages.map((m) => m.seq);
    expect(await pinsOf(ben)).toEqual([two.seq]);
    expect((await pinsOf(ann)).sort()).toEqual([one.seq, two.seq]);
  });

  it('an edit in slow mode is not held back by the wait (an edit takes no slot)', async () => {
    const { owner, ann, room } = await team();
    await api(owner).conversations.update.mutate({ id: room.id, slowModeSeconds: 60 });
    const sent = await send(ann, room.id, 'tpyo');
    const edited = await api(ann).messages.edit.mutate({
      conversationId: room.id,
      seq: sent.seq,
      contentType: 'text/plain',
      ciphertext: b64('typo'),
    });
    expect(edited.editedAt).not.toBeNull();
    // The slot is still the send's: the next message waits.
    expect(await codeOf(send(ann, room.id, 'again'))).toBe('TOO_MANY_REQUESTS');
  });

  it('a removed member resending an old client message id gets the message without its reactions', async () => {
    const { owner, ann, room } = await team();
    const sent = await send(ann, room.id, 'mine');
    const ref = { conversationId: room.id, seq: sent.seq };
    await api(owner).messages.react.mutate({ ...ref, emoji: '👍', on: true });
    const resend = () => sendText(t, ann, room.id, 'mine', sent.clientMessageId);
    expect((await resend()).reactions).toEqual([{ emoji: '👍', userIds: [owner.userId] }]);
    await api(owner).conversations.removeMember.mutate({ id: room.id, userId: ann.userId });
    await api(owner).messages.react.mutate({ ...ref, emoji: '🎉', on: true });
    const again = await resend();
    expect([again.id, again.seq, again.reactions]).toEqual([sent.id, sent.seq, []]);
  });

  it('a send decided on a cached context of a conversation deleted since is NOT_FOUND, not a 500', async () => {
    const { owner, ann, room } = await team();
    await send(ann, room.id, 'caches my posting context');
    const { posting } = t.server.infra.ports;
    const cached = posting.get(room.id, ann.userId);
    expect(cached).toBeDefined();
    await api(owner).conversations.delete.mutate({ id: room.id });
    // As an instance that missed the deletion's bus message still has it.
    posting.set(room.id, ann.userId, cached!, posting.epoch());
    expect(await codeOf(send(ann, room.id, 'into the void'))).toBe('NOT_FOUND');
  });

  it('the snapshot previews my newest message not deleted for me', async () => {
    const { ann, ben, room } = await team();
    const one = await send(ann, room.id, 'one');
    const two = await send(ann, room.id, 'two');
    const three = await send(ann, room.id, 'three');
    const preview = async (a: Account) =>
      (await api(a).sync.snapshot.query()).conversations.find((c) => c.conversation.id === room.id)
        ?.lastMessage?.seq ?? null;
    for (const { seq } of [three, two])
      await api(ben).messages.deleteForMe.mutate({ conversationId: room.id, seq });
    expect(await preview(ben)).toBe(one.seq);
    expect(await preview(ann)).toBe(three.seq);
    await api(ben).messages.deleteForMe.mutate({ conversationId: room.id, seq: one.seq });
    expect(await preview(ben)).toBeNull();
  });
});

// React, pin and delete reach every member, like a send: they spend the account's send budget.
describe(`changes to messages spend the per-account send budget (${backendLabel})`, () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startServer({
      messaging: { ...defaultConfig().messaging, sendLimit: { points: 3, durationSeconds: 60 } },
    });
  });
  afterAll(() => t.stop());

  it('once my sends spent it, my reactions, pins and deletions wait too', async () => {
    const [alice, bob] = [await registerUser(t), await registerUser(t)];
    const api = clientWithToken(t, alice.accessToken).api;
    const chat = await api.conversations.create.mutate({ kind: 'direct', userId: bob.userId });
    const sent = await sendText(t, bob, chat.id, 'from bob');
    const mine = await sendText(t, alice, chat.id, 'from alice');
    await sendText(t, alice, chat.id, 'two');
    await sendText(t, alice, chat.id, 'three');
    const ref = { conversationId: chat.id, seq: sent.seq };
    expect(await codeOf(api.messages.react.mutate({ ...ref, emoji: '👍', on: true }))).toBe(
      'TOO_MANY_REQUESTS',
    );
    expect(await codeOf(api.messages.pin.mutate({ ...ref, pinned: true }))).toBe(
      'TOO_MANY_REQUESTS',
    );
    expect(
      await codeOf(api.messages.delete.mutate({ conversationId: chat.id, seq: mine.seq })),
    ).toBe('TOO_MANY_REQUESTS');
    // Bob's budget is his own.
    const bobs = clientWithToken(t, bob.accessToken).api;
    await bobs.messages.react.mutate({
      conversationId: chat.id,
      seq: mine.seq,
      emoji: '👍',
      on: true,
    });
  });
});
