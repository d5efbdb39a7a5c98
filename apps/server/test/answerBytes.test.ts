/**
 * Pages stop at a byte budget, not only at a row count: messages and envelopes hold up to
 * 64 KiB, and a page of 200 of them, or a batch of 50 such pages, built answers of hundreds of
 * MB while the server stalled (packages/api/src/answerBytes.ts).
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PAGE_BYTES, REQUEST_BYTES } from '@mvp/api';
import type { TSyncEvent } from '@mvp/contracts';
import {
  befriend,
  clientWithToken,
  currentDeviceId,
  registerUser,
  type Account,
} from './helpers/accounts';
import { codeOf } from './helpers/errors';
import { newClientMessageId } from './helpers/messaging';
import { backendLabel } from './helpers/env';
import { startServer, type TestServer } from './helpers/startServer';

const BIG = 60_000; // bytes of ciphertext a message (base64: 80 000 characters)
const COUNT = 30; // about three pages' worth

describe(`answers stop at a byte budget (${backendLabel})`, () => {
  let t: TestServer;
  let alice: Account;
  let bob: Account;
  let chatId: string;
  let before: string; // bob's stream before the messages
  const sent: number[] = [];

  beforeAll(async () => {
    t = await startServer();
    [alice, bob] = [await registerUser(t), await registerUser(t)];
    await befriend(t, alice, bob);
    const api = clientWithToken(t, alice.accessToken).api;
    chatId = (await api.conversations.create.mutate({ kind: 'direct', userId: bob.userId })).id;
    before = (await clientWithToken(t, bob.accessToken).api.sync.snapshot.query()).cursor;
    for (let i = 0; i < COUNT; i++) {
      const message = await api.messages.send.mutate({
        conversationId: chatId,
        clientMessageId: newClientMessageId(),
        contentType: 'application/octet-stream',
        ciphertext: randomBytes(BIG).toString('base64'),
      });
      sent.push(message.seq);
    }
  });
  afterAll(() => t.stop());

  const bobApi = () => clientWithToken(t, bob.accessToken).api;
  const bytesOf = (messages: { ciphertext: string | null }[]) =>
    messages.reduce((sum, m) => sum + (m.ciphertext?.length ?? 0), 0);

  it('history pages stop near PAGE_BYTES and page on through every message once, both ways', async () => {
    const newestFirst: number[] = [];
    let cursor: number | undefined;
    for (let more = true; more;) {
      const page = await bobApi().messages.history.query({
        conversationId: chatId,
        limit: 200,
        ...(cursor === undefined ? {} : { before: cursor }),
      });
      expect(page.messages.length).toBeGreaterThan(0);
      expect(bytesOf(page.messages)).toBeLessThanOrEqual(PAGE_BYTES);
      newestFirst.push(...page.messages.map((m) => m.seq));
      cursor = page.messages.at(-1)!.seq;
      more = page.more;
    }
    expect(newestFirst).toEqual([...sent].reverse());

    const oldestFirst: number[] = [];
    let after = 0;
    for (let more = true; more;) {
      const page = await bobApi().messages.history.query({
        conversationId: chatId,
        limit: 200,
        after,
      });
      expect(bytesOf(page.messages)).toBeLessThanOrEqual(PAGE_BYTES);
      oldestFirst.push(...page.messages.map((m) => m.seq));
      after = page.messages.at(-1)!.seq;
      more = page.more;
    }
    expect(oldestFirst).toEqual(sent);
    // Small pages are untouched: the row limit still holds first.
    const three = await bobApi().messages.history.query({ conversationId: chatId, limit: 3 });
    expect(three.messages.map((m) => m.seq)).toEqual(sent.slice(-3).reverse());
    expect(three.more).toBe(true);
  });

  it('the pages of one HTTP batch share REQUEST_BYTES; each still moves on by a message', async () => {
    const api = bobApi();
    // Issued together: the client sends them as one batch request.
    const pages = await Promise.all(
      Array.from({ length: 20 }, () =>
        api.messages.history.query({ conversationId: chatId, limit: 200 }),
      ),
    );
    const total = pages.reduce((sum, page) => sum + bytesOf(page.messages), 0);
    // Without the shared budget: 20 full histories, 48 MB.
    expect(total).toBeLessThanOrEqual(REQUEST_BYTES + 20 * BIG * 2);
    for (const page of pages) {
      expect(page.messages.length).toBeGreaterThan(0);
      expect(page.more).toBe(true);
    }
  });

  it('a snapshot carries about a page of waiting envelopes; the rest are read with sync.pendingEnvelopes, and the SDK hands every one over once before its stream', async () => {
    const carol = await registerUser(t);
    const deviceId = await currentDeviceId(t, carol.accessToken);
    const sent: string[] = [];
    for (let i = 0; i < 4; i++) {
      const envelopes = Array.from({ length: 5 }, () => ({
        userId: carol.userId,
        deviceId,
        contentType: 'mvp/test',
        ciphertext: randomBytes(BIG).toString('base64'),
      }));
      const { ids } = await clientWithToken(t, alice.accessToken).api.sync.sendToDevices.mutate({
        envelopes,
      });
      sent.push(...ids);
    }
    const carolApi = clientWithToken(t, carol.accessToken).api;
    // A client that does not page (an older SDK, REST that does not ask) gets every one at once:
    // it would stream from the cursor after the first page and never see the rest.
    const unpaged = await carolApi.sync.snapshot.query();
    expect(unpaged.pendingEnvelopes.map((e) => e.envelope.id)).toEqual(sent);
    expect(unpaged.moreEnvelopes).toBe(false);
    const snapshot = await carolApi.sync.snapshot.query({ pagedEnvelopes: true });
    expect(snapshot.moreEnvelopes).toBe(true);
    const waiting = snapshot.pendingEnvelopes;
    expect(bytesOf(waiting.map((e) => e.envelope))).toBeLessThanOrEqual(PAGE_BYTES);
    for (let more = true; more;) {
      const page = await carolApi.sync.pendingEnvelopes.query({
        after: waiting.at(-1)!.id,
        upTo: snapshot.cursor,
      });
      expect(bytesOf(page.envelopes.map((e) => e.envelope))).toBeLessThanOrEqual(PAGE_BYTES);
      waiting.push(...page.envelopes);
      more = page.more;
    }
    expect(waiting.map((e) => e.envelope.id)).toEqual(sent);

    const app = t.newClient({ getToken: () => carol.accessToken });
    const handed: string[] = [];
    app.sync.onEvent((event) => {
      if (event.type === 'envelope') handed.push(event.envelope.id);
    });
    await app.sync.start();
    expect(handed).toEqual(sent);
    await app.sync.stop();
  });

  it('a snapshot carries about a page of conversations; sync.conversations (REST too) reads the rest by id, each once, and the SDK hands the app all of them', async () => {
    const dave = await registerUser(t);
    const daveApi = clientWithToken(t, dave.accessToken).api;
    const sendBig = (conversationId: string) =>
      daveApi.messages.send.mutate({
        conversationId,
        clientMessageId: newClientMessageId(),
        contentType: 'application/octet-stream',
        ciphertext: randomBytes(BIG).toString('base64'),
      });
    const made: string[] = [];
    for (let i = 0; i < 24; i++) {
      const group = await daveApi.conversations.create.mutate({ kind: 'group', title: `g${i}` });
      await sendBig(group.id);
      made.push(group.id);
    }
    const byId = [...made].sort();
    // A client that does not page gets every one, newest change first, as before.
    const unpaged = await daveApi.sync.snapshot.query();
    expect(unpaged.conversations.map((c) => c.conversation.id)).toEqual([...made].reverse());
    expect(unpaged.moreConversations).toBeUndefined();

    const snapshot = await daveApi.sync.snapshot.query({ pagedConversations: true });
    expect(snapshot.moreConversations).toBe(true);
    const listed = [...snapshot.conversations];
    expect(bytesOf(listed.map((c) => c.lastMessage!))).toBeLessThanOrEqual(PAGE_BYTES);
    // Changed between two pages: by newest change it would move ahead of the pages still to come.
    const changed = byId.at(-1)!;
    expect(listed.map((c) => c.conversation.id)).not.toContain(changed);
    await sendBig(changed);
    for (let more = true; more;) {
      const res = await fetch(
        `${t.server.url}/api/v1/sync/conversations?after=${listed.at(-1)!.conversation.id}`,
        { headers: { authorization: `Bearer ${dave.accessToken}` } },
      );
      expect(res.status).toBe(200);
      const page = (await res.json()) as { conversations: typeof listed; more: boolean };
      expect(page.conversations.length).toBeGreaterThan(0);
      expect(bytesOf(page.conversations.map((c) => c.lastMessage!))).toBeLessThanOrEqual(
        PAGE_BYTES,
      );
      listed.push(...page.conversations);
      more = page.more;
    }
    expect(listed.map((c) => c.conversation.id)).toEqual(byId);
    expect(listed.find((c) => c.conversation.id === changed)!.lastMessage!.seq).toBe(2);

    // Only my own, whoever's id `after` names; a malformed id is refused.
    const bobsOwn = await bobApi().sync.conversations.query({ after: byId[0]! });
    expect(bobsOwn.conversations.map((c) => c.conversation.id)).toEqual(
      chatId > byId[0]! ? [chatId] : [],
    );
    expect(await codeOf(bobApi().sync.conversations.query({ after: 'not-an-id' }))).toBe(
      'BAD_REQUEST',
    );
    const anonymous = await fetch(`${t.server.url}/api/v1/sync/conversations?after=${byId[0]}`);
    expect(anonymous.status).toBe(401);

    const app = t.newClient({ getToken: () => dave.accessToken });
    let handed: string[] = [];
    app.sync.onSnapshot((state) => {
      handed = state.conversations.map((c) => c.conversation.id);
    });
    app.sync.onEvent(() => undefined);
    await app.sync.start();
    // Every one, in the unpaged snapshot's order: the last changed first.
    expect(handed).toEqual([changed, ...[...made].reverse().filter((id) => id !== changed)]);
    const unpagedNow = await daveApi.sync.snapshot.query();
    expect(handed).toEqual(unpagedNow.conversations.map((c) => c.conversation.id));
    await app.sync.stop();
  }, 30_000);

  it('one batch of history, a snapshot and a polling read completes (the pages do not wait on the snapshot’s transaction)', async () => {
    const api = bobApi();
    const [history, snapshot, polled] = await Promise.all([
      api.messages.history.query({ conversationId: chatId, limit: 200 }),
      api.sync.snapshot.query({ pagedEnvelopes: true }),
      api.sync.poll.query({ after: before, limit: 500 }),
    ]);
    expect(history.messages.length).toBeGreaterThan(0);
    expect(snapshot.conversations.map((c) => c.conversation.id)).toContain(chatId);
    expect(polled.more).toBe(true);
    expect((await api.me.get.query()).id).toBe(bob.userId); // and the server goes on
  }, 20_000);

  it('the REST polling read stops near PAGE_BYTES and its cursor reads on, every message once', async () => {
    const seen: number[] = [];
    let after = before;
    for (;;) {
      const res = await fetch(`${t.server.url}/api/v1/sync/events?after=${after}&limit=500`, {
        headers: { authorization: `Bearer ${bob.accessToken}` },
      });
      expect(res.status).toBe(200);
      const page = (await res.json()) as {
        events: { id: string; event: TSyncEvent }[];
        cursor: string;
        more: boolean;
      };
      const messages = page.events.flatMap(({ event }) =>
        event.type === 'message.new' && event.message.conversationId === chatId
          ? [event.message]
          : [],
      );
      expect(bytesOf(messages)).toBeLessThanOrEqual(PAGE_BYTES);
      seen.push(...messages.map((m) => m.seq));
      after = page.cursor;
      if (!page.more) break; // said when cut short: no need to ask once more to find out
    }
    expect(seen).toEqual(sent);
  });
});
