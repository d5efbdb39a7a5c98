import { TRPCClientError } from '@trpc/client';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { base64ToBytes, bytesToBase64, subjectOf } from './base64';
import type { Message } from './messaging';
import { classifySendError } from './errors';
import { createMemoryOutboxStore, createOutbox } from './outbox';
import type {
  EditMessageInput,
  OutboxItem,
  OutboxStore,
  SendMessageInput,
  StoredOutboxEntry,
} from './outboxTypes';

const STATUS: Record<string, number> = {
  BAD_REQUEST: 400,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  PAYLOAD_TOO_LARGE: 413,
  TOO_MANY_REQUESTS: 429,
  SERVICE_UNAVAILABLE: 503,
  INTERNAL_SERVER_ERROR: 500,
  UNAUTHORIZED: 401,
};

/** An error as the server answers it (tRPC error shape, typed `appCode`). */
function serverError(appCode: string, extra: Record<string, unknown> = {}) {
  return TRPCClientError.from({
    error: {
      code: -32000,
      message: appCode.toLowerCase(),
      data: { code: appCode, httpStatus: STATUS[appCode] ?? 500, appCode, ...extra },
    },
  });
}

/** An entry as an earlier run kept it in the store, queued in c1 (`userId` its owner, if any). */
const keptEntry = (clientMessageId: string, text: string, userId?: string): StoredOutboxEntry => ({
  clientMessageId,
  conversationId: 'c1',
  contentType: 'text/plain',
  ciphertext: bytesToBase64(bytes(text)),
  queuedAt: 1,
  order: 0,
  state: 'queued',
  ...(userId === undefined ? {} : { userId }),
});

/** One account signed in all along. */
const asMe = { currentUser: () => 'me' };

const wire = <T>(value: object): T => value as T;
const bytes = (text: string) => new TextEncoder().encode(text);
const text = (b: Uint8Array | null) => new TextDecoder().decode(b ?? new Uint8Array());

type Call<I> = { input: I; asUser: string; answer: (outcome: Error | null) => void };

/**
 * A fake `messages.send` and `messages.edit`: each call waits for the test to answer it, so the
 * test sees exactly which sends (`calls`) and edits (`edits`) are in flight, in which order
 * (`log`: `send <text>`, `edit <seq> <text>`), with which client message id.
 */
function fakeServer() {
  const calls: Call<SendMessageInput>[] = [];
  const edits: Call<EditMessageInput>[] = [];
  const log: string[] = [];
  let seq = 0;
  const waiters: (() => void)[] = [];
  const call = <I extends { ciphertext: string }>(
    into: Call<I>[],
    input: I,
    asUser: string,
    // Only what the outbox reads; the server's message type grows with the API.
    answer: () => object,
  ) =>
    new Promise<Message>((resolve, reject) => {
      into.push({
        input,
        asUser,
        answer: (outcome) =>
          outcome
            ? reject(outcome)
            : resolve(
                wire<Message>({
                  ...input,
                  senderId: 'me',
                  senderDeviceId: 'd',
                  ciphertext: base64ToBytes(input.ciphertext),
                  createdAt: new Date(0).toISOString(),
                  deletedAt: null,
                  ...answer(),
                }),
              ),
      });
      waiters.splice(0).forEach((w) => w());
    });
  const send = (input: SendMessageInput, asUser: string) => {
    log.push(`send ${text(base64ToBytes(input.ciphertext))}`);
    return call(calls, input, asUser, () => ({
      id: `m${++seq}`,
      seq,
      replyToSeq: input.replyToSeq ?? null,
      forwarded: input.forwarded ?? false,
      editedAt: null,
    }));
  };
  const edit = (input: EditMessageInput, asUser: string) => {
    log.push(`edit ${input.seq} ${text(base64ToBytes(input.ciphertext))}`);
    return call(edits, input, asUser, () => ({
      id: `m${input.seq}`,
      replyToSeq: null,
      forwarded: false,
      editedAt: new Date(1).toISOString(),
    }));
  };
  const waitFor = async <I>(into: Call<I>[], n: number) => {
    while (into.length < n) await new Promise<void>((r) => waiters.push(r));
    return into[n - 1]!;
  };
  /** Resolves once `n` sends have been made in total. */
  const calledTimes = (n: number) => waitFor(calls, n);
  /** Resolves once `n` edits have been made in total. */
  const editedTimes = (n: number) => waitFor(edits, n);
  return { send, edit, calls, edits, log, calledTimes, editedTimes };
}

describe('outbox', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('sends one conversation in order, one at a time, and others alongside', async () => {
    const server = fakeServer();
    const outbox = createOutbox({ ...asMe, send: server.send, edit: server.edit });
    const first = outbox.send('c1', { contentType: 'text/plain', ciphertext: bytes('one') });
    const second = outbox.send('c1', { contentType: 'text/plain', ciphertext: bytes('two') });
    outbox.send('c2', { contentType: 'text/plain', ciphertext: bytes('elsewhere') });

    await server.calledTimes(2);
    expect(
      server.calls.map((c) => [c.input.conversationId, text(base64ToBytes(c.input.ciphertext))]),
    ).toEqual([
      ['c1', 'one'],
      ['c2', 'elsewhere'],
    ]);
    expect(server.calls[0]!.input.clientMessageId).toBe(first.clientMessageId);
    expect(first.clientMessageId).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(outbox.pending('c1').map((i) => i.state)).toEqual(['sending', 'queued']);

    server.calls[0]!.answer(null);
    expect(text((await first.result).ciphertext)).toBe('one');
    const next = await server.calledTimes(3);
    expect(next.input.clientMessageId).toBe(second.clientMessageId);
    next.answer(null);
    await second.result;
    expect(outbox.pending('c1')).toEqual([]);
  });

  it('retries a network failure with the same client message id, after a backoff', async () => {
    const server = fakeServer();
    const outbox = createOutbox({
      ...asMe,
      send: server.send,
      edit: server.edit,
      backoff: { minDelayMs: 1_000, maxDelayMs: 10_000 },
      random: () => 1,
    });
    const states: OutboxItem['state'][] = [];
    outbox.onChange((item) => states.push(item.state));
    const handle = outbox.send('c1', { contentType: 'text/plain', ciphertext: bytes('hi') });

    (await server.calledTimes(1)).answer(new TypeError('fetch failed'));
    await vi.advanceTimersByTimeAsync(999);
    expect(server.calls).toHaveLength(1);
    expect(outbox.pending()[0]).toMatchObject({ state: 'queued', error: { code: 'NETWORK' } });
    await vi.advanceTimersByTimeAsync(1);
    const retry = await server.calledTimes(2);
    expect(retry.input.clientMessageId).toBe(handle.clientMessageId);

    retry.answer(serverError('SERVICE_UNAVAILABLE'));
    await vi.advanceTimersByTimeAsync(2_000); // the second wait is twice as long
    (await server.calledTimes(3)).answer(null);
    await handle.result;
    expect(new Set(server.calls.map((c) => c.input.clientMessageId)).size).toBe(1);
    expect(states).toEqual(['queued', 'sending', 'queued', 'sending', 'queued', 'sending', 'sent']);
  });

  it('waits out retryAfterMs on TOO_MANY_REQUESTS, which retryNow does not cut short; it ends a backoff wait early', async () => {
    const server = fakeServer();
    const outbox = createOutbox({ ...asMe, send: server.send, edit: server.edit, random: () => 0 });
    const handle = outbox.send('c1', { contentType: 'text/plain', ciphertext: bytes('hi') });
    (await server.calledTimes(1)).answer(serverError('TOO_MANY_REQUESTS', { retryAfterMs: 7_000 }));

    await vi.advanceTimersByTimeAsync(6_999);
    expect(server.calls).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    (await server.calledTimes(2)).answer(
      serverError('TOO_MANY_REQUESTS', { retryAfterMs: 60_000 }),
    );

    // The network coming back (the client's WebSocket reopens) does not lift the server's limit.
    await vi.advanceTimersByTimeAsync(0);
    outbox.retryNow();
    await vi.advanceTimersByTimeAsync(59_999);
    expect(server.calls).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(1);
    (await server.calledTimes(3)).answer(new TypeError('fetch failed'));

    // A backoff of its own, though, ends at once.
    await vi.advanceTimersByTimeAsync(0);
    outbox.retryNow();
    (await server.calledTimes(4)).answer(null);
    await handle.result;
  });

  it('the wait TOO_MANY_REQUESTS asked for outlasts a pause and the resume after it', async () => {
    const server = fakeServer();
    const outbox = createOutbox({ ...asMe, send: server.send, edit: server.edit });
    const handle = outbox.send('c1', { contentType: 'text/plain', ciphertext: bytes('hi') });
    (await server.calledTimes(1)).answer(
      serverError('TOO_MANY_REQUESTS', { retryAfterMs: 60_000 }),
    );
    await vi.advanceTimersByTimeAsync(1_000);
    // The app goes to the background and comes back: the server's limit still holds.
    outbox.pause();
    await vi.advanceTimersByTimeAsync(0);
    outbox.retryNow();
    await vi.advanceTimersByTimeAsync(58_999);
    expect(server.calls).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    (await server.calledTimes(2)).answer(null);
    await handle.result;
  });

  it('fails a message on a permanent error and goes on with the next', async () => {
    const server = fakeServer();
    const outbox = createOutbox({ ...asMe, send: server.send, edit: server.edit });
    const bad = outbox.send('c1', { contentType: 'text/plain', ciphertext: bytes('too big') });
    const good = outbox.send('c1', { contentType: 'text/plain', ciphertext: bytes('fine') });

    (await server.calledTimes(1)).answer(serverError('PAYLOAD_TOO_LARGE'));
    await expect(bad.result).rejects.toThrow('payload_too_large');
    (await server.calledTimes(2)).answer(null);
    await good.result;
    expect(outbox.pending()).toMatchObject([
      {
        clientMessageId: bad.clientMessageId,
        state: 'failed',
        error: { code: 'PAYLOAD_TOO_LARGE' },
      },
    ]);

    // The app may try it again (same id) or let it go.
    outbox.retry(bad.clientMessageId);
    const again = await server.calledTimes(3);
    expect(again.input.clientMessageId).toBe(bad.clientMessageId);
    again.answer(serverError('FORBIDDEN'));
    await vi.advanceTimersByTimeAsync(0);
    expect(outbox.pending()[0]?.state).toBe('failed');
    await outbox.discard(bad.clientMessageId);
    expect(outbox.pending()).toEqual([]);
  });

  it('keeps pending sends in its store, and a new outbox on the store sends them in order', async () => {
    const store = createMemoryOutboxStore();
    const before = fakeServer();
    const old = createOutbox({ ...asMe, send: before.send, edit: before.edit, store });
    const a = old.send('c1', { contentType: 'text/plain', ciphertext: bytes('a'), replyToSeq: 3 });
    const b = old.send('c1', { contentType: 'text/plain', ciphertext: bytes('b') });
    await before.calledTimes(1); // 'a' is on its way when the app dies
    old.pause();

    const stored = await store.load();
    expect(stored.map((e) => [e.clientMessageId, e.state])).toEqual([
      [a.clientMessageId, 'queued'],
      [b.clientMessageId, 'queued'],
    ]);
    expect(JSON.parse(JSON.stringify(stored))).toEqual(stored);

    const after = fakeServer();
    const restarted = createOutbox({ ...asMe, send: after.send, edit: after.edit, store });
    await restarted.restore();
    expect(restarted.pending().map((i) => text(i.ciphertext))).toEqual(['a', 'b']);
    const first = await after.calledTimes(1);
    expect(first.input).toMatchObject({ clientMessageId: a.clientMessageId, replyToSeq: 3 });
    first.answer(null);
    (await after.calledTimes(2)).answer(null);
    await vi.advanceTimersByTimeAsync(0);
    expect(after.calls.map((c) => c.input.clientMessageId)).toEqual([
      a.clientMessageId,
      b.clientMessageId,
    ]);
    expect(await store.load()).toEqual([]);
  });

  it('sends an edit behind the sends queued before it, retries it with the same bytes, and fails it on a permanent error', async () => {
    const server = fakeServer();
    const outbox = createOutbox({ ...asMe, send: server.send, edit: server.edit });
    const sent = outbox.send('c1', { contentType: 'text/plain', ciphertext: bytes('helo') });
    const edit = outbox.edit('c1', 1, { contentType: 'text/plain', ciphertext: bytes('hello') });
    const first = await server.calledTimes(1);
    await vi.advanceTimersByTimeAsync(0);
    expect(server.log).toEqual(['send helo']);
    expect(outbox.pending('c1').map((i) => [i.state, i.editSeq])).toEqual([
      ['sending', undefined],
      ['queued', 1],
    ]);
    first.answer(null);
    await sent.result;

    const attempt = await server.editedTimes(1);
    expect(edit.clientMessageId).toMatch(/^edit-[A-Za-z0-9_-]{22}$/);
    expect(attempt).toMatchObject({
      asUser: 'me',
      input: {
        conversationId: 'c1',
        seq: 1,
        contentType: 'text/plain',
        clientEditId: edit.clientMessageId,
      },
    });
    expect(text(base64ToBytes(attempt.input.ciphertext))).toBe('hello');
    attempt.answer(new TypeError('fetch failed'));
    await vi.advanceTimersByTimeAsync(0);
    outbox.retryNow();
    const retry = await server.editedTimes(2);
    expect(retry.input).toEqual(attempt.input);
    retry.answer(null);
    expect(await edit.result).toMatchObject({ seq: 1, editedAt: new Date(1).toISOString() });
    expect(server.log).toEqual(['send helo', 'edit 1 hello', 'edit 1 hello']);

    // The message was deleted meanwhile: the server refuses for good.
    const late = outbox.edit('c1', 1, { contentType: 'text/plain', ciphertext: bytes('bye') });
    (await server.editedTimes(3)).answer(serverError('BAD_REQUEST'));
    await expect(late.result).rejects.toThrow('bad_request');
    expect(outbox.pending()).toMatchObject([
      { clientMessageId: late.clientMessageId, editSeq: 1, state: 'failed' },
    ]);
    expect(server.calls).toHaveLength(1);
    expect(() =>
      outbox.edit('c1', 0, { contentType: 'text/plain', ciphertext: bytes('no seq') }),
    ).toThrow(/not a message seq/);
  });

  it('rejects the handle of what it discards', async () => {
    const server = fakeServer();
    const outbox = createOutbox({ ...asMe, send: server.send, edit: server.edit });
    outbox.send('c1', { contentType: 'text/plain', ciphertext: bytes('first') });
    const second = outbox.edit('c1', 1, { contentType: 'text/plain', ciphertext: bytes('never') });
    await server.calledTimes(1);
    await outbox.discard(second.clientMessageId);
    await expect(second.result).rejects.toThrow('discarded');
  });

  it('keeps a pending edit in its store, and a new outbox sends it as an edit; a kept edit of no seq is left alone', async () => {
    const store = createMemoryOutboxStore();
    const before = fakeServer();
    const old = createOutbox({ ...asMe, send: before.send, edit: before.edit, store });
    const edit = old.edit('c1', 4, { contentType: 'text/plain', ciphertext: bytes('fixed') });
    await before.editedTimes(1); // on its way when the app dies
    old.pause();
    expect(await store.load()).toMatchObject([
      { clientMessageId: edit.clientMessageId, editSeq: 4, state: 'queued' },
    ]);
    // An edit whose seq a store dropped, and one of no seq: neither is sent (nor as a message).
    await store.save(keptEntry('edit-dropped-its-seq', 'what?', 'me'));
    await store.save({ ...keptEntry('edit-damaged', 'what?', 'me'), editSeq: 0 });

    // The clock went back across the restart: what is queued now still goes after what was kept.
    const after = fakeServer();
    const restarted = createOutbox({
      ...asMe,
      send: after.send,
      edit: after.edit,
      store,
      now: () => 0,
    });
    await restarted.restore();
    restarted.send('c1', { contentType: 'text/plain', ciphertext: bytes('later') });
    expect(restarted.pending().map((i) => [i.clientMessageId, i.editSeq])).toMatchObject([
      [edit.clientMessageId, 4],
      [expect.any(String), undefined],
    ]);
    (await after.editedTimes(1)).answer(null);
    (await after.calledTimes(1)).answer(null);
    await vi.advanceTimersByTimeAsync(0);
    expect(after.log).toEqual(['edit 4 fixed', 'send later']);
    expect((await store.load()).map((e) => e.clientMessageId).sort()).toEqual([
      'edit-damaged',
      'edit-dropped-its-seq',
    ]);
  });

  it('sends restored entries before new ones', async () => {
    const kept = createMemoryOutboxStore();
    await kept.save(keptEntry('restored-1', 'old', 'me'));
    // A slow store: the new send must still queue behind what it holds.
    const slow: OutboxStore = {
      load: async () => {
        await new Promise((r) => setTimeout(r, 100));
        return kept.load();
      },
      save: (entry) => kept.save(entry),
      remove: (id) => kept.remove(id),
    };
    const server = fakeServer();
    const outbox = createOutbox({ ...asMe, send: server.send, edit: server.edit, store: slow });
    outbox.send('c1', { contentType: 'text/plain', ciphertext: bytes('new') });
    await vi.advanceTimersByTimeAsync(100);
    const first = await server.calledTimes(1);
    expect(first.input.clientMessageId).toBe('restored-1');
  });

  it("sends, lists and tells of only the signed-in account's entries; the others wait for theirs", async () => {
    const store = createMemoryOutboxStore();
    const server = fakeServer();
    let who: string | null = 'alice';
    const outbox = createOutbox({
      send: server.send,
      edit: server.edit,
      currentUser: () => who,
      store,
    });
    const seen: OutboxItem[] = [];
    outbox.onChange((item) => seen.push(item));
    const hers = outbox.send('c1', { contentType: 'text/plain', ciphertext: bytes('from alice') });
    const onTheWire = await server.calledTimes(1);
    expect(onTheWire.asUser).toBe('alice');

    // Alice signs out while her send is on its way, and Bob signs in; then her send fails.
    who = null;
    outbox.accountChanged();
    who = 'bob';
    outbox.accountChanged();
    onTheWire.answer(new TypeError('fetch failed'));
    await vi.advanceTimersByTimeAsync(0);
    expect(outbox.pending()).toEqual([]);
    seen.length = 0;
    const his = outbox.send('c1', { contentType: 'text/plain', ciphertext: bytes('from bob') });
    const bobs = await server.calledTimes(2);
    expect([bobs.asUser, bobs.input.clientMessageId]).toEqual(['bob', his.clientMessageId]);
    expect(outbox.pending().map((i) => i.clientMessageId)).toEqual([his.clientMessageId]);
    bobs.answer(null);
    await his.result;
    await vi.advanceTimersByTimeAsync(60_000);
    outbox.retryNow();
    await vi.advanceTimersByTimeAsync(60_000);
    expect(server.calls).toHaveLength(2);
    expect(outbox.pending()).toEqual([]);
    expect(seen.map((i) => i.clientMessageId)).not.toContain(hers.clientMessageId);
    expect((await store.load()).map((e) => [e.clientMessageId, e.userId, e.state])).toEqual([
      [hers.clientMessageId, 'alice', 'queued'],
    ]);

    // Back as Alice: her message goes out, as her, with the same client message id.
    who = 'alice';
    outbox.accountChanged();
    const again = await server.calledTimes(3);
    expect([again.asUser, again.input.clientMessageId]).toEqual(['alice', hers.clientMessageId]);
    again.answer(null);
    expect(text((await hers.result).ciphertext)).toBe('from alice');
    expect(await store.load()).toEqual([]);
  });

  it('fails a send at once when no one is signed in, and keeps nothing of it', async () => {
    const store = createMemoryOutboxStore();
    const server = fakeServer();
    const outbox = createOutbox({
      send: server.send,
      edit: server.edit,
      currentUser: () => null,
      store,
    });
    const handle = outbox.send('c1', { contentType: 'text/plain', ciphertext: bytes('whose?') });
    await expect(handle.result).rejects.toThrow('no one is signed in');
    await vi.advanceTimersByTimeAsync(60_000);
    expect([server.calls.length, outbox.pending(), await store.load()]).toEqual([0, [], []]);
  });

  it('a send discarded by a listener told it failed is not kept, so no restart lists it', async () => {
    const store = createMemoryOutboxStore();
    const server = fakeServer();
    const outbox = createOutbox({ ...asMe, send: server.send, edit: server.edit, store });
    outbox.onChange((item) => {
      if (item.state === 'failed') void outbox.discard(item.clientMessageId);
    });
    const handle = outbox.send('c1', { contentType: 'text/plain', ciphertext: bytes('too big') });
    (await server.calledTimes(1)).answer(serverError('PAYLOAD_TOO_LARGE'));
    await expect(handle.result).rejects.toThrow('discarded');
    await vi.advanceTimersByTimeAsync(0);
    expect([outbox.pending(), await store.load()]).toEqual([[], []]);

    const restarted = createOutbox({ ...asMe, send: server.send, edit: server.edit, store });
    await restarted.restore();
    expect(restarted.pending()).toEqual([]);
  });

  it('a send discarded while its owner is asked is not kept, so no restart sends it', async () => {
    const store = createMemoryOutboxStore();
    const server = fakeServer();
    let answer!: (user: string) => void;
    const asked = new Promise<string>((resolve) => (answer = resolve));
    const outbox = createOutbox({
      send: server.send,
      edit: server.edit,
      currentUser: () => asked,
      store,
    });
    const handle = outbox.send('c1', { contentType: 'text/plain', ciphertext: bytes('oops') });
    await outbox.discard(handle.clientMessageId);
    answer('me');
    await vi.advanceTimersByTimeAsync(60_000);
    expect([server.calls.length, outbox.pending(), await store.load()]).toEqual([0, [], []]);

    const restarted = createOutbox({ ...asMe, send: server.send, edit: server.edit, store });
    await restarted.restore();
    await vi.advanceTimersByTimeAsync(60_000);
    expect(server.calls.length).toBe(0);
  });

  it('a restore that cannot tell who is signed in asks again after a backoff, then sends', async () => {
    const store = createMemoryOutboxStore();
    await store.save(keptEntry('kept-1', 'from before', 'me'));
    let locked = 2; // the token store fails twice (a keychain locked at boot)
    const server = fakeServer();
    const outbox = createOutbox({
      send: server.send,
      edit: server.edit,
      currentUser: () => {
        if (locked-- > 0) throw new Error('keychain locked');
        return 'me';
      },
      store,
    });
    await outbox.restore();
    expect([server.calls.length, outbox.pending()]).toEqual([0, []]);
    await vi.advanceTimersByTimeAsync(60_000);
    const sent = await server.calledTimes(1);
    expect([sent.asUser, sent.input.clientMessageId]).toEqual(['me', 'kept-1']);
  });

  it('an earlier question about the account answered late does not undo a newer answer', async () => {
    const store = createMemoryOutboxStore();
    await store.save(keptEntry('alices-1', 'from alice', 'alice'));
    const server = fakeServer();
    const questions: ((user: string) => void)[] = [];
    const outbox = createOutbox({
      send: server.send,
      edit: server.edit,
      currentUser: () => new Promise<string>((resolve) => questions.push(resolve)),
      store,
    });
    const restored = outbox.restore();
    await vi.waitFor(() => expect(questions).toHaveLength(1));
    questions[0]!('bob');
    await restored;
    outbox.accountChanged();
    outbox.accountChanged();
    expect(questions).toHaveLength(3);
    questions[2]!('bob'); // the newer question
    questions[1]!('alice'); // an older one, answered late
    await vi.advanceTimersByTimeAsync(60_000);
    expect([outbox.pending(), server.calls.length]).toEqual([[], 0]);
  });

  it('sends an entry kept without an owner (older SDK) as no one, and leaves it in the store', async () => {
    const store = createMemoryOutboxStore();
    const legacy = keptEntry('legacy-1', 'whose?');
    await store.save(legacy);
    const server = fakeServer();
    const outbox = createOutbox({ ...asMe, send: server.send, edit: server.edit, store });
    await outbox.restore();
    const mine = outbox.send('c1', { contentType: 'text/plain', ciphertext: bytes('mine') });
    const first = await server.calledTimes(1);
    expect(first.input.clientMessageId).toBe(mine.clientMessageId);
    first.answer(null);
    await mine.result;
    await vi.advanceTimersByTimeAsync(60_000);
    expect([server.calls.length, outbox.pending()]).toEqual([1, []]);
    expect(await store.load()).toEqual([legacy]);

    // An app that knows whose it is writes the owner in: then it goes out as them.
    await store.save({ ...legacy, userId: 'me' });
    const restarted = createOutbox({ ...asMe, send: server.send, edit: server.edit, store });
    await restarted.restore();
    const adopted = await server.calledTimes(2);
    expect([adopted.asUser, adopted.input.clientMessageId]).toEqual(['me', 'legacy-1']);
  });

  it('a stored entry it cannot read is passed over and left in the store; the rest and new sends go out', async () => {
    const store = createMemoryOutboxStore();
    await store.save({ ...keptEntry('corrupt', 'x', 'me'), ciphertext: 'not base64!' });
    await store.save({ ...keptEntry('kept', 'old', 'me'), order: 1 });
    const server = fakeServer();
    const outbox = createOutbox({ ...asMe, send: server.send, edit: server.edit, store });
    const fresh = outbox.send('c1', { contentType: 'text/plain', ciphertext: bytes('new') });
    await vi.advanceTimersByTimeAsync(0);
    expect(server.calls.map((c) => c.input.clientMessageId)).toEqual(['kept']);
    server.calls[0]!.answer(null);
    (await server.calledTimes(2)).answer(null);
    await fresh.result;
    expect(server.calls[1]!.input.clientMessageId).toBe(fresh.clientMessageId);
    await expect(outbox.restore()).resolves.toBeUndefined();
    expect(outbox.pending()).toEqual([]);
    expect((await store.load()).map((e) => e.clientMessageId)).toEqual(['corrupt']);
  });

  it('a change listener that throws stops neither the send it was told of, nor the listeners after it, nor the order', async () => {
    const server = fakeServer();
    const outbox = createOutbox({ ...asMe, send: server.send, edit: server.edit });
    let failures = 1;
    outbox.onChange((item) => {
      if (item.state === 'sending' && failures-- > 0) throw new Error('a bug in the app');
    });
    const heard: string[] = [];
    outbox.onChange((item) => void heard.push(`${text(item.ciphertext)} ${item.state}`));
    const one = outbox.send('c1', { contentType: 'text/plain', ciphertext: bytes('one') });
    const two = outbox.send('c1', { contentType: 'text/plain', ciphertext: bytes('two') });
    await vi.advanceTimersByTimeAsync(0);
    expect(server.calls.map((c) => text(base64ToBytes(c.input.ciphertext)))).toEqual(['one']);
    server.calls[0]!.answer(null);
    (await server.calledTimes(2)).answer(null);
    await Promise.all([one.result, two.result]);
    expect(server.calls.map((c) => c.input.clientMessageId)).toEqual([
      one.clientMessageId,
      two.clientMessageId,
    ]);
    expect(heard).toEqual([
      'one queued',
      'two queued',
      'one sending',
      'one sent',
      'two sending',
      'two sent',
    ]);
  });
});

describe('classifySendError', () => {
  it('retries network failures, 5xx, UNAUTHORIZED and rate limits; fails the rest', () => {
    expect(classifySendError(new TypeError('fetch failed'))).toEqual({ retry: true });
    expect(classifySendError(serverError('INTERNAL_SERVER_ERROR'))).toEqual({ retry: true });
    expect(classifySendError(serverError('UNAUTHORIZED'))).toEqual({ retry: true });
    expect(classifySendError(serverError('TOO_MANY_REQUESTS', { retryAfterMs: 5 }))).toEqual({
      retry: true,
      afterMs: 5,
    });
    for (const code of ['BAD_REQUEST', 'FORBIDDEN', 'NOT_FOUND', 'PAYLOAD_TOO_LARGE'])
      expect(classifySendError(serverError(code))).toEqual({ retry: false });
  });

  it("fails a body too large for the server however it is said: tRPC's code, or a bare 413", () => {
    const trpcOnly = TRPCClientError.from({
      error: { code: -32600, message: 'too large', data: { code: 'PAYLOAD_TOO_LARGE' } },
    });
    const unreadable = TRPCClientError.from(new Error('Unable to transform response'), {
      meta: { response: new Response('<html>413</html>', { status: 413 }) },
    });
    expect(classifySendError(trpcOnly)).toEqual({ retry: false });
    expect(classifySendError(unreadable)).toEqual({ retry: false });
  });
});

describe('base64', () => {
  it('round-trips every length and byte, and matches the standard encoding', () => {
    for (let n = 0; n < 70; n++) {
      const data = Uint8Array.from({ length: n }, (_, i) => (i * 37 + n) & 255);
      const encoded = bytesToBase64(data);
      expect(encoded).toBe(btoa(String.fromCharCode(...data)));
      expect(base64ToBytes(encoded)).toEqual(data);
    }
  });

  it('refuses what is not padded standard base64', () => {
    for (const bad of ['abc', 'ab=c', 'a===', 'ab-_', 'äbcd'])
      expect(() => base64ToBytes(bad)).toThrow();
  });

  it('reads the subject of a JWT without checking it, and nothing from anything else', () => {
    const part = (value: object) =>
      bytesToBase64(bytes(JSON.stringify(value)))
        .replace(/=+$/, '')
        .replace(/\+/g, '-')
        .replace(/\//g, '_');
    const jwt = (claims: object) => `${part({ alg: 'EdDSA' })}.${part(claims)}.signature`;
    // Lengths that need 0, 1 and 2 padding characters, and base64url's own characters.
    for (const sub of ['u-1', 'user-12', 'user-123', '0198a3f2-7c1e-7d3b-9f00-3e2a1b4c5d6e'])
      expect(subjectOf(jwt({ sub, sid: 's?>~', exp: 1 }))).toBe(sub);
    for (const bad of ['', 'opaque-token', 'a.b', jwt({ sub: 42 }), jwt({}), 'x.%%%.y'])
      expect(subjectOf(bad)).toBeUndefined();
  });
});
