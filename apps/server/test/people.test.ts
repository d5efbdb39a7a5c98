import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { errorCodeOf } from '@mvp/sdk';
import {
  befriend,
  clientWithToken,
  freshPhone,
  freshUsername,
  PASSWORD,
  registerByPhone,
  registerUser,
  type Account,
} from './helpers/accounts';
import { eventQueue } from './helpers/collect';
import { startServer, testAuthConfig, type TestServer } from './helpers/startServer';
import { backendLabel } from './helpers/env';
import { codeOf } from './helpers/errors';

describe(`people: profiles, privacy, search, contacts, blocks (${backendLabel})`, () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startServer();
  });
  afterAll(() => t.stop());

  const api = (a: Account) => clientWithToken(t, a.accessToken).api;
  /**
   * A user's contact events on their sync stream (presence left out: contacts' sockets come and
   * go in these tests), resolved once the server has started the stream.
   */
  const live = async (a: Account) => {
    const events = eventQueue<{ type: string } & Record<string, unknown>>();
    const client = t.newClient({ getToken: () => a.accessToken, WebSocket });
    let sub: { unsubscribe(): void } | undefined;
    await new Promise<void>((resolve, reject) => {
      sub = client.api.sync.events.subscribe(
        { lastEventId: null },
        {
          onStarted: () => resolve(),
          onData: ({ data }) => {
            if (data.type.startsWith('contact.') || data.type.startsWith('block.'))
              events.push(data);
          },
          onError: reject,
        },
      );
    });
    return { events, stop: () => sub?.unsubscribe() };
  };

  it('profiles show bio and avatar; privacy has Signal-like defaults and can be changed', async () => {
    const ada = await registerUser(t);
    const bob = await registerUser(t);
    await api(ada).me.update.mutate({ bio: 'Analytical engine enthusiast' });
    const seen = await api(bob).users.get.query({ id: ada.userId });
    expect(seen).toMatchObject({
      id: ada.userId,
      username: ada.username,
      bio: 'Analytical engine enthusiast',
      isContact: false,
    });
    expect(await api(ada).users.privacy.query()).toEqual({
      findByPhone: 'everyone',
      presence: 'contacts',
      contactRequests: 'everyone',
      readReceipts: true,
    });
    expect(await api(ada).users.updatePrivacy.mutate({ findByPhone: 'nobody' })).toMatchObject({
      findByPhone: 'nobody',
    });
    expect(
      await codeOf(api(ada).users.updatePrivacy.mutate({ presence: 'friends' as never })),
    ).toBe('BAD_REQUEST');
    expect(await codeOf(api(ada).users.updatePrivacy.mutate({}))).toBe('BAD_REQUEST');
    expect(await codeOf(api(bob).users.get.query({ id: 'not-a-uuid' }))).toBe('BAD_REQUEST');
    expect(await codeOf(t.client.api.users.get.query({ id: ada.userId }))).toBe('UNAUTHORIZED');
  });

  it('search: a prefix page costs a point per profile, so the budget bounds profiles, not calls', async () => {
    const limited = await startServer({ searchLimit: { points: 5, durationSeconds: 3600 } });
    try {
      const stem = freshUsername('bdg').slice(0, 14);
      const accounts = [];
      for (let i = 0; i < 3; i++) accounts.push(await registerUser(limited, `${stem}_${i}`));
      const search = clientWithToken(limited, accounts[0]!.accessToken).api.users.search;
      expect((await search.query({ prefix: stem })).users).toHaveLength(3); // 3 points
      expect((await search.query({ username: accounts[1]!.username })).users).toHaveLength(1); // 4
      expect(await codeOf(search.query({ prefix: stem }))).toBe('TOO_MANY_REQUESTS');
    } finally {
      await limited.stop();
    }
  });

  it('search: exact username and unique id, username prefix with a cursor; never a list of everyone', async () => {
    const stem = freshUsername('pfx').slice(0, 14);
    const accounts = [];
    for (let i = 0; i < 3; i++) accounts.push(await registerUser(t, `${stem}_${i}`));
    const me = accounts[0]!;
    expect(
      (await api(me).users.search.query({ username: accounts[1]!.username })).users.map(
        (u) => u.id,
      ),
    ).toEqual([accounts[1]!.userId]);
    expect(
      (await api(me).users.search.query({ uniqueId: accounts[2]!.uniqueId })).users[0]!.id,
    ).toBe(accounts[2]!.userId);

    const page1 = await api(me).users.search.query({ prefix: stem, limit: 2 });
    expect(page1.users.map((u) => u.username)).toEqual([`${stem}_0`, `${stem}_1`]);
    const page2 = await api(me).users.search.query({
      prefix: stem,
      limit: 2,
      cursor: page1.nextCursor!,
    });
    expect(page2.users.map((u) => u.username)).toEqual([`${stem}_2`]);
    expect(page2.nextCursor).toBeNull();
    // '_' is a literal here, not a LIKE wildcard
    expect((await api(me).users.search.query({ prefix: `${stem.slice(0, -1)}_` })).users).toEqual(
      [],
    );

    expect(await codeOf(api(me).users.search.query({}))).toBe('BAD_REQUEST');
    expect(await codeOf(api(me).users.search.query({ username: 'abc', prefix: 'ab' }))).toBe(
      'BAD_REQUEST',
    );
    expect(await codeOf(api(me).users.search.query({ prefix: 'a' }))).toBe('BAD_REQUEST');
  });

  it('search by phone goes through the blind index and honours "who can find me by phone"', async () => {
    const phone = freshPhone();
    const owner = await registerByPhone(t, phone);
    const seeker = await registerUser(t);
    const ownerApi = clientWithToken(t, owner.accessToken).api;
    const find = async () =>
      (await api(seeker).users.search.query({ phone })).users.map((u) => u.id);
    expect(await find()).toEqual([owner.user.id]);
    await ownerApi.users.updatePrivacy.mutate({ findByPhone: 'contacts' });
    expect(await find()).toEqual([]);
    await ownerApi.users.updatePrivacy.mutate({ findByPhone: 'nobody' });
    expect(await find()).toEqual([]);
  });

  it('search: a prefix page leaves out who blocked me before it is cut, so its cursor never names them', async () => {
    const stem = freshUsername('blk').slice(0, 14);
    const blocker = await registerUser(t, `${stem}_1`);
    const other = await registerUser(t, `${stem}_2`);
    const me = await registerUser(t);
    await api(blocker).blocks.add.mutate({ userId: me.userId });
    const page = await api(me).users.search.query({ prefix: stem, limit: 1 });
    expect(page).toMatchObject({ users: [{ id: other.userId }], nextCursor: null });
  });

  it('search by phone over REST: a "+" the query string turned into a space still finds the number', async () => {
    const phone = freshPhone();
    const owner = await registerByPhone(t, phone);
    const seeker = await registerUser(t);
    // Written as integrators write it: an unescaped '+', which form decoding reads as a space.
    const res = await fetch(`${t.server.url}/api/v1/users/search?phone=${phone}`, {
      headers: { authorization: `Bearer ${seeker.accessToken}` },
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { users: { id: string }[] };
    expect(body.users.map((u) => u.id)).toEqual([owner.user.id]);
  });

  it('contact requests: a list of several, both ways, each with its own other side', async () => {
    const [ada, bob, cy, dan] = await Promise.all([1, 2, 3, 4].map(() => registerUser(t)));
    const toBob = await api(ada!).contacts.request.mutate({ userId: bob!.userId });
    const toCy = await api(ada!).contacts.request.mutate({ userId: cy!.userId, message: 'cy?' });
    const fromDan = await api(dan!).contacts.request.mutate({ userId: ada!.userId });

    const { incoming, outgoing } = await api(ada!).contacts.requests.query();
    // By id: two requests may share a millisecond, and then their order is the database's.
    const seen = (list: typeof incoming) =>
      list
        .map((r) => ({ id: r.id, direction: r.direction, user: r.user.id, message: r.message }))
        .sort((a, b) => a.id.localeCompare(b.id));
    expect(seen(outgoing)).toEqual([
      { id: toBob.requestId, direction: 'outgoing', user: bob!.userId, message: null },
      { id: toCy.requestId, direction: 'outgoing', user: cy!.userId, message: 'cy?' },
    ]);
    expect(seen(incoming)).toEqual([
      { id: fromDan.requestId, direction: 'incoming', user: dan!.userId, message: null },
    ]);
    expect(new Set(outgoing.map((r) => r.user.isContact))).toEqual(new Set([false]));
  });

  it('contact requests: send, see both ways, accept; live events reach both users', async () => {
    const ada = await registerUser(t);
    const bob = await registerUser(t);
    const bobLive = await live(bob);
    const adaLive = await live(ada);
    const sent = await api(ada).contacts.request.mutate({ userId: bob.userId, message: 'Hi Bob' });
    expect(sent.status).toBe('pending');
    const received = await bobLive.events.next();
    expect(received).toMatchObject({
      type: 'contact.request.received',
      request: { id: sent.requestId, direction: 'incoming', message: 'Hi Bob' },
    });
    // My other devices follow what I do on this one.
    expect(await adaLive.events.next()).toMatchObject({
      type: 'contact.request.sent',
      request: { id: sent.requestId, direction: 'outgoing', user: { id: bob.userId } },
    });

    expect((await api(ada).contacts.requests.query()).outgoing.map((r) => r.id)).toEqual([
      sent.requestId,
    ]);
    expect((await api(bob).contacts.requests.query()).incoming.map((r) => r.user.id)).toEqual([
      ada.userId,
    ]);
    // Sending again is idempotent.
    expect(await api(ada).contacts.request.mutate({ userId: bob.userId })).toEqual({
      status: 'pending',
      requestId: sent.requestId,
    });

    await api(bob).contacts.accept.mutate({ id: sent.requestId! });
    // Each sees the new contact as a contact, presence included (both are online).
    expect(await adaLive.events.next()).toMatchObject({
      type: 'contact.request.accepted',
      requestId: sent.requestId,
      user: { id: bob.userId, isContact: true, presence: { online: true } },
    });
    expect(await bobLive.events.next()).toMatchObject({
      type: 'contact.request.accepted',
      requestId: sent.requestId,
      user: { id: ada.userId, isContact: true, presence: { online: true } },
    });
    expect((await api(ada).contacts.list.query()).contacts.map((c) => c.id)).toEqual([bob.userId]);
    expect((await api(bob).users.get.query({ id: ada.userId })).isContact).toBe(true);

    await api(ada).contacts.remove.mutate({ userId: bob.userId });
    expect(await bobLive.events.next()).toMatchObject({
      type: 'contact.removed',
      userId: ada.userId,
    });
    expect(await adaLive.events.next()).toEqual({ type: 'contact.removed', userId: bob.userId });
    expect((await api(bob).contacts.list.query()).contacts).toEqual([]);
    bobLive.stop();
    adaLive.stop();
  });

  it('asking someone who already asked me accepts their request; decline and cancel tell the other side', async () => {
    const [a, b, c, d] = [
      await registerUser(t),
      await registerUser(t),
      await registerUser(t),
      await registerUser(t),
    ];
    const first = await api(a).contacts.request.mutate({ userId: b.userId });
    expect(await api(b).contacts.request.mutate({ userId: a.userId })).toEqual({
      status: 'accepted',
      requestId: first.requestId,
    });
    expect((await api(a).contacts.list.query()).contacts.map((x) => x.id)).toEqual([b.userId]);

    const aLive = await live(a);
    const toC = await api(a).contacts.request.mutate({ userId: c.userId });
    expect((await aLive.events.next()).type).toBe('contact.request.sent');
    await api(c).contacts.decline.mutate({ id: toC.requestId! });
    expect(await aLive.events.next()).toMatchObject({
      type: 'contact.request.declined',
      requestId: toC.requestId,
    });

    // Declined: asking again at once is refused for a day (it would undo the decline).
    const refused = await api(a)
      .contacts.request.mutate({ userId: c.userId })
      .catch((e: unknown) => e);
    expect(errorCodeOf(refused)).toBe('TOO_MANY_REQUESTS');
    const wait = (refused as { data: { retryAfterMs: number } }).data.retryAfterMs;
    expect(wait).toBeGreaterThan(23 * 3600 * 1000);
    expect((await api(c).contacts.requests.query()).incoming).toEqual([]);

    const dLive = await live(d);
    const toD = await api(a).contacts.request.mutate({ userId: d.userId });
    expect((await dLive.events.next()).type).toBe('contact.request.received');
    expect((await aLive.events.next()).type).toBe('contact.request.sent');
    await api(a).contacts.cancel.mutate({ id: toD.requestId! });
    expect(await dLive.events.next()).toMatchObject({
      type: 'contact.request.cancelled',
      requestId: toD.requestId,
    });
    expect(await aLive.events.next()).toMatchObject({
      type: 'contact.request.cancelled',
      requestId: toD.requestId,
    });
    dLive.stop();
    aLive.stop();
  });

  // A race of MySQL's connection pool (the embedded database takes the requests in turn).
  it('an accept racing a cancel or a block: never contacts after either won', async () => {
    for (const race of ['cancel', 'block'] as const) {
      const [a, b] = [await registerUser(t), await registerUser(t)];
      const { requestId } = await api(a).contacts.request.mutate({ userId: b.userId });
      const [accepted, other] = await Promise.all([
        codeOf(api(b).contacts.accept.mutate({ id: requestId! })),
        race === 'cancel'
          ? codeOf(api(a).contacts.cancel.mutate({ id: requestId! }))
          : codeOf(api(a).blocks.add.mutate({ userId: b.userId })),
      ]);
      const contacts = (await api(b).contacts.list.query()).contacts.map((c) => c.id);
      if (race === 'cancel') {
        // One of the two took the request.
        expect([accepted, other].sort()).toEqual(['NOT_FOUND', 'ok']);
        expect(contacts).toEqual(accepted === 'ok' ? [a.userId] : []);
      } else {
        expect(other).toBe('ok');
        expect(contacts).toEqual([]);
      }
    }
  });

  it('new contact requests are limited per account; a pending one asked again costs nothing', async () => {
    const limited = await startServer({ requestLimit: { points: 2, durationSeconds: 86_400 } });
    try {
      const [a, b, c, d] = [
        await registerUser(limited),
        await registerUser(limited),
        await registerUser(limited),
        await registerUser(limited),
      ];
      const ask = (to: Account) =>
        clientWithToken(limited, a.accessToken).api.contacts.request.mutate({ userId: to.userId });
      expect((await ask(b)).status).toBe('pending');
      expect((await ask(b)).status).toBe('pending'); // the same one: not a new request
      expect((await ask(c)).status).toBe('pending');
      expect(await codeOf(ask(d))).toBe('TOO_MANY_REQUESTS');
      const toD = await clientWithToken(limited, d.accessToken).api.contacts.requests.query();
      expect(toD.incoming).toEqual([]);
    } finally {
      await limited.stop();
    }
  });

  it("someone else's request or contact is NOT_FOUND; malformed ids are BAD_REQUEST; nothing changes", async () => {
    const [a, b, mallory] = [await registerUser(t), await registerUser(t), await registerUser(t)];
    const req = await api(a).contacts.request.mutate({ userId: b.userId });
    expect(await codeOf(api(mallory).contacts.accept.mutate({ id: req.requestId! }))).toBe(
      'NOT_FOUND',
    );
    expect(await codeOf(api(mallory).contacts.decline.mutate({ id: req.requestId! }))).toBe(
      'NOT_FOUND',
    );
    expect(await codeOf(api(mallory).contacts.cancel.mutate({ id: req.requestId! }))).toBe(
      'NOT_FOUND',
    );
    expect(await codeOf(api(b).contacts.cancel.mutate({ id: req.requestId! }))).toBe('NOT_FOUND'); // not b's to cancel
    expect(await codeOf(api(a).contacts.accept.mutate({ id: req.requestId! }))).toBe('NOT_FOUND'); // not a's to accept
    expect(await codeOf(api(mallory).contacts.remove.mutate({ userId: a.userId }))).toBe(
      'NOT_FOUND',
    );
    expect(await codeOf(api(a).contacts.accept.mutate({ id: 'x' }))).toBe('BAD_REQUEST');
    expect(await codeOf(api(a).contacts.request.mutate({ userId: a.userId }))).toBe('BAD_REQUEST');
    expect(
      await codeOf(api(a).contacts.request.mutate({ userId: b.userId, message: 'x'.repeat(141) })),
    ).toBe('BAD_REQUEST');
    expect((await api(b).contacts.requests.query()).incoming.map((r) => r.id)).toEqual([
      req.requestId,
    ]);
  });

  it('blocks: the contact ends, the blocked user cannot ask or find me, and is refused like anyone I do not accept', async () => {
    const [me, pest, stranger] = [
      await registerUser(t),
      await registerUser(t),
      await registerUser(t),
    ];
    const req = await api(me).contacts.request.mutate({ userId: pest.userId });
    await api(pest).contacts.accept.mutate({ id: req.requestId! });
    await api(me).users.updatePrivacy.mutate({ contactRequests: 'everyone' });
    await api(me).me.update.mutate({ bio: 'private-ish bio' });

    const [mine, theirs] = [await live(me), await live(pest)];
    await api(me).blocks.add.mutate({ userId: pest.userId });
    // My devices hear of the block; the blocked user is not told.
    expect(await mine.events.next()).toEqual({ type: 'block.added', userId: pest.userId });
    expect((await api(me).contacts.list.query()).contacts).toEqual([]);
    expect((await api(me).blocks.list.query()).blocked.map((b) => b.id)).toEqual([pest.userId]);
    expect((await api(pest).users.search.query({ username: me.username })).users).toEqual([]);
    const hidden = await api(pest).users.get.query({ id: me.userId });
    expect(hidden).toMatchObject({ bio: null, avatarUrl: null, presence: null, isContact: false });

    // Blocked, and "accepts no requests": the same answer, so a block is not revealed.
    const refusal = (p: Promise<unknown>) =>
      p.then(
        () => new Error('accepted'),
        (e: unknown) => e as Error,
      );
    const blockedError = await refusal(api(pest).contacts.request.mutate({ userId: me.userId }));
    await api(stranger).users.updatePrivacy.mutate({ contactRequests: 'nobody' });
    const closedError = await refusal(
      api(pest).contacts.request.mutate({ userId: stranger.userId }),
    );
    expect(errorCodeOf(blockedError)).toBe('FORBIDDEN');
    expect(errorCodeOf(closedError)).toBe('FORBIDDEN');
    expect(blockedError.message).toBe(closedError.message);

    expect(await codeOf(api(me).blocks.add.mutate({ userId: me.userId }))).toBe('BAD_REQUEST');
    await api(me).blocks.remove.mutate({ userId: pest.userId });
    expect(await mine.events.next()).toEqual({ type: 'block.removed', userId: pest.userId });
    expect(await codeOf(api(me).blocks.remove.mutate({ userId: pest.userId }))).toBe('NOT_FOUND');
    expect(theirs.events.size).toBe(0);
    mine.stop();
    theirs.stop();
    expect(
      (await api(pest).users.search.query({ username: me.username })).users.map((u) => u.id),
    ).toEqual([me.userId]);
  });

  it('unblocking someone I did not block is NOT_FOUND, leaves their block of me, and tells nobody', async () => {
    const [me, them] = [await registerUser(t), await registerUser(t)];
    // They blocked me: the one block between us is theirs, not mine to lift.
    await api(them).blocks.add.mutate({ userId: me.userId });
    const [mine, theirs] = [
      (await api(me).sync.snapshot.query()).cursor,
      (await api(them).sync.snapshot.query()).cursor,
    ];
    const typesSince = async (a: Account, cursor: string) =>
      (await api(a).sync.poll.query({ after: cursor })).events.map((e) => e.event.type);

    const refused = await api(me)
      .blocks.remove.mutate({ userId: them.userId })
      .then(
        () => new Error('unblocked'),
        (e: unknown) => e as Error,
      );
    expect(errorCodeOf(refused)).toBe('NOT_FOUND');
    expect(refused.message).toBe('Not blocked');
    // Nobody at all, as for someone who never existed.
    expect(
      await codeOf(
        api(me).blocks.remove.mutate({ userId: '0190d4a2-0000-7000-8000-000000000000' }),
      ),
    ).toBe('NOT_FOUND');

    expect(await typesSince(me, mine)).toEqual([]);
    expect(await typesSince(them, theirs)).toEqual([]);
    expect((await api(them).blocks.list.query()).blocked.map((b) => b.id)).toEqual([me.userId]);
    expect((await api(me).blocks.list.query()).blocked).toEqual([]);

    // The stream read above does show a real block and unblock, and only to the one who did it.
    await api(me).blocks.add.mutate({ userId: them.userId });
    await api(me).blocks.remove.mutate({ userId: them.userId });
    expect(await typesSince(me, mine)).toEqual(['block.added', 'block.removed']);
    expect(await typesSince(them, theirs)).toEqual([]);
    expect((await api(them).blocks.list.query()).blocked.map((b) => b.id)).toEqual([me.userId]);
  });

  it('deleting an account tells its contacts and the other side of each pending request, as remove and cancel do', async () => {
    const [gone, friend, asker, asked] = [
      await registerUser(t),
      await registerUser(t),
      await registerUser(t),
      await registerUser(t),
    ];
    await befriend(t, gone, friend);
    const incoming = await api(asker).contacts.request.mutate({ userId: gone.userId });
    const outgoing = await api(gone).contacts.request.mutate({ userId: asked.userId });
    const cursors = await Promise.all(
      [friend, asker, asked].map(async (a) => (await api(a).sync.snapshot.query()).cursor),
    );
    await api(gone).me.delete.mutate({ password: PASSWORD });
    const told = await Promise.all(
      [friend, asker, asked].map(async (a, i) =>
        (await api(a).sync.poll.query({ after: cursors[i]!, limit: 500 })).events
          .map(({ event }) => event)
          .filter((event) => event.type.startsWith('contact.')),
      ),
    );
    expect(told).toEqual([
      [{ type: 'contact.removed', userId: gone.userId }],
      [{ type: 'contact.request.cancelled', requestId: incoming.requestId }],
      [{ type: 'contact.request.cancelled', requestId: outgoing.requestId }],
    ]);
  });

  it('REST paths: users, privacy, contacts, requests, blocks', async () => {
    const [a, b] = [await registerUser(t), await registerUser(t)];
    const call = async (method: string, path: string, token: string, body?: unknown) => {
      const res = await fetch(`${t.server.url}/api/v1${path}`, {
        method,
        headers: {
          authorization: `Bearer ${token}`,
          ...(method === 'GET' ? {} : { 'content-type': 'application/json' }),
        },
        body: method === 'GET' ? undefined : JSON.stringify(body ?? {}),
      });
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    };
    expect((await call('GET', `/users/${b.userId}`, a.accessToken)).body).toMatchObject({
      id: b.userId,
    });
    expect(
      (await call('GET', `/users/search?username=${b.username}`, a.accessToken)).body.users,
    ).toHaveLength(1);
    expect(
      (await call('PATCH', '/me/privacy', a.accessToken, { presence: 'nobody' })).body,
    ).toMatchObject({ presence: 'nobody' });
    const sent = await call('POST', '/contacts/requests', a.accessToken, { userId: b.userId });
    expect(sent.status).toBe(200);
    const id = sent.body.requestId as string;
    expect(
      ((await call('GET', '/contacts/requests', b.accessToken)).body.incoming as unknown[]).length,
    ).toBe(1);
    expect((await call('POST', `/contacts/requests/${id}/accept`, b.accessToken)).status).toBe(200);
    expect(
      ((await call('GET', '/contacts', a.accessToken)).body.contacts as unknown[]).length,
    ).toBe(1);
    expect((await call('DELETE', `/contacts/${b.userId}`, a.accessToken)).status).toBe(200);
    expect((await call('POST', '/blocks', a.accessToken, { userId: b.userId })).status).toBe(200);
    expect(((await call('GET', '/blocks', a.accessToken)).body.blocked as unknown[]).length).toBe(
      1,
    );
    expect((await call('DELETE', `/blocks/${b.userId}`, a.accessToken)).status).toBe(200);
    const other = await call('POST', `/contacts/requests/${id}/decline`, b.accessToken);
    expect(other.status).toBe(404);
  });
});

describe(`search budget (${backendLabel})`, () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startServer(
      { searchLimit: { points: 3, durationSeconds: 900 } },
      { auth: testAuthConfig() },
    );
  });
  afterAll(() => t.stop());

  it('the account lookup budget runs out with TOO_MANY_REQUESTS and a wait', async () => {
    const me = await registerUser(t);
    const api = clientWithToken(t, me.accessToken).api;
    for (let i = 0; i < 3; i++) await api.users.search.query({ username: freshUsername() });
    const error = await api.users.search
      .query({ username: freshUsername() })
      .catch((e: unknown) => e as { data: { retryAfterMs: number } });
    expect(errorCodeOf(error)).toBe('TOO_MANY_REQUESTS');
    expect((error as { data: { retryAfterMs: number } }).data.retryAfterMs).toBeGreaterThan(0);
  });
});
