import { randomBytes } from 'node:crypto';
import { uuidv7 } from 'uuidv7';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clientWithToken, currentDeviceId, registerUser, type Account } from './helpers/accounts';
import { backendLabel } from './helpers/env';
import { startServer, type TestServer } from './helpers/startServer';

const b64 = (text: string) => Buffer.from(text).toString('base64');

// Queries rewritten to read through an index (2026-11-26T0300-lookup-indexes): the answers must be
// the ones the old queries gave. The plans are checked on SQLite next to the queries
// (callQueries.test.ts, usernamesStartingWith.test.ts in @mvp/api).
describe(`lookups through indexes answer as before (${backendLabel})`, () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startServer({ searchLimit: { points: 10_000, durationSeconds: 60 } });
  });
  afterAll(() => t.stop());

  const api = (a: Account) => clientWithToken(t, a.accessToken).api;

  it('call history merges the calls I made and took: newest first, any page size, by cursor', async () => {
    const [alice, bob, carol] = [
      await registerUser(t),
      await registerUser(t),
      await registerUser(t),
    ];
    const devices = new Map<Account, string>();
    for (const a of [alice, bob, carol]) devices.set(a, await currentDeviceId(t, a.accessToken));
    /** A call that rings and is declined at once: ended, so the next one is not busy. */
    const call = async (from: Account, to: Account) => {
      const started = await api(from).calls.start.mutate({
        callId: uuidv7(),
        calleeId: to.userId,
        media: 'audio',
        offers: [{ deviceId: devices.get(to)!, ciphertext: b64('offer') }],
      });
      await api(to).calls.reject.mutate({ callId: started.id });
      return started.id;
    };
    // Oldest first: runs of made and taken calls of different lengths, so pages cut both sides.
    const ids = [
      await call(alice, bob),
      await call(bob, alice),
      await call(carol, alice),
      await call(alice, carol),
      await call(alice, bob),
      await call(alice, carol),
      await call(bob, carol), // not Alice's
      await call(carol, alice),
    ];
    const alices = ids.filter((_, i) => i !== 6).reverse();
    // A call to oneself cannot be placed (BAD_REQUEST), but a row that says so is listed once.
    const self = uuidv7();
    const now = Date.now();
    await t.server.infra.ports.db
      .insertInto('calls')
      .values({
        id: self,
        caller_id: alice.userId,
        caller_device_id: devices.get(alice)!,
        callee_id: alice.userId,
        callee_device_id: null,
        media: 'audio',
        state: 'ended',
        end_reason: 'user_hangup',
        created_at: now,
        accepted_at: null,
        ended_at: now,
        caller_beat_at: null,
        callee_beat_at: null,
      })
      .execute();
    const expected = [self, ...alices];

    const history = (a: Account, input: { before?: string; limit?: number }) =>
      api(a).calls.history.query(input);
    for (let limit = 1; limit <= expected.length + 1; limit++) {
      const seen: string[] = [];
      let before: string | undefined;
      for (;;) {
        const page = await history(alice, { limit, before });
        seen.push(...page.calls.map((c) => c.id));
        expect(page.calls.length, `limit ${limit}`).toBe(
          Math.min(limit, expected.length - seen.length + page.calls.length),
        );
        expect(page.more, `limit ${limit}`).toBe(seen.length < expected.length);
        if (!page.more) break;
        before = page.calls[page.calls.length - 1]!.id;
      }
      expect(seen, `limit ${limit}`).toEqual(expected);
    }
    // From every cursor, exactly the older calls, sides as Alice sees them.
    for (const [i, id] of expected.entries())
      expect((await history(alice, { before: id })).calls.map((c) => c.id)).toEqual(
        expected.slice(i + 1),
      );
    const page = await history(alice, { limit: 3, before: self });
    expect(page.calls.map((c) => c.direction)).toEqual(['incoming', 'outgoing', 'outgoing']);
    expect(page.more).toBe(true);
    // Bob and Carol: their own made and taken calls, Alice's call with the other not among them.
    expect((await history(bob, {})).calls.map((c) => c.id)).toEqual(
      [ids[0], ids[1], ids[4], ids[6]].reverse(),
    );
    expect((await history(carol, { limit: 3 })).calls.map((c) => c.id)).toEqual(
      [ids[5], ids[6], ids[7]].reverse(),
    );
  });

  it('search by username prefix: exactly the usernames that start with it, in pages', async () => {
    // `stem` ends in 'm': 'l…' sorts just before it, 'n…' just after.
    const base = `q${randomBytes(5).toString('hex')}`;
    const stem = `${base}m`;
    const inside = ['', '_x', '0', '9', 'a', 'z', 'zz', '_'].map((end) => `${stem}${end}`);
    const outside = [`${base}l`, `${base}lz`, `${base}n`, `${base}n_`, `${base}`];
    const me = await registerUser(t);
    for (const name of [...inside, ...outside]) await registerUser(t, name);

    const search = async (prefix: string, limit = 50, cursor?: string) =>
      api(me).users.search.query({ prefix, limit, cursor });
    const namesOf = async (prefix: string) => (await search(prefix)).users.map((u) => u.username);
    const all = await namesOf(stem);
    // In the database's order of usernames ('_' before or after digits, as its collation has it).
    expect([...all].sort()).toEqual([...inside].sort());
    expect(await namesOf(stem.toUpperCase())).toEqual(all);
    expect(await namesOf(`${stem}z`)).toEqual([`${stem}z`, `${stem}zz`]);
    expect(await namesOf(`${stem}zz`)).toEqual([`${stem}zz`]);
    expect(await namesOf(`${stem}_`)).toEqual(all.filter((n) => n!.startsWith(`${stem}_`)));
    expect(await namesOf(`${stem}9`)).toEqual([`${stem}9`]);
    expect(await namesOf(`${base}n`)).toEqual([`${base}n`, `${base}n_`]);
    expect(await namesOf(`${base}k`)).toEqual([]);
    expect((await namesOf(base)).length).toBe(inside.length + outside.length);

    for (const limit of [1, 2, 3, inside.length - 1, inside.length]) {
      const pages: string[] = [];
      let cursor: string | undefined;
      for (;;) {
        const page = await search(stem, limit, cursor);
        pages.push(...page.users.map((u) => u.username!));
        if (!page.nextCursor) break;
        cursor = page.nextCursor;
      }
      expect(pages, `limit ${limit}`).toEqual(all);
    }
  });
});
