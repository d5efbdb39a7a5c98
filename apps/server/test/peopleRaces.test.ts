import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PASSWORD, clientWithToken, registerUser, type Account } from './helpers/accounts';
import { backendLabel } from './helpers/env';
import { racedBy as raced } from './helpers/raced';
import { startServer, type TestServer } from './helpers/startServer';

/** How a direct call of a procedure ended: 'ok', or the code it was refused with. */
const outcomeOf = (p: Promise<unknown>) =>
  p.then(
    () => 'ok',
    (e: { appCode?: string; code?: string }) => e.appCode ?? e.code ?? 'thrown',
  );

// A contact request and a block check the people involved, then write in a transaction: a block
// or an account deletion committed in between must be honoured by the write. These tests put the
// competing change exactly there.
describe(`contact requests and blocks that race a block or a deletion (${backendLabel})`, () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startServer();
  });
  afterAll(() => t.stop());

  const api = (a: Account) => clientWithToken(t, a.accessToken).api;

  const racedBy = (who: Account, between: () => Promise<unknown>) => raced(t, who, between);

  const requestRows = (from: Account, to: Account) =>
    t.server.infra.ports.db
      .selectFrom('contact_requests')
      .select('id')
      .where('from_user_id', '=', from.userId)
      .where('to_user_id', '=', to.userId)
      .execute();

  it('a request whose target blocks me between the checks and the write is refused, stored and told nowhere', async () => {
    const [me, them] = [await registerUser(t), await registerUser(t)];
    const { cursor } = await api(them).sync.snapshot.query();
    const blockMe = () => api(them).blocks.add.mutate({ userId: me.userId });
    const asking = (await racedBy(me, blockMe)).contacts.request({ userId: them.userId });
    // As the checks before answer a user who blocked me: like anyone who accepts no requests.
    expect(await outcomeOf(asking)).toBe('FORBIDDEN');
    expect(await requestRows(me, them)).toEqual([]);
    const told = (await api(them).sync.poll.query({ after: cursor, limit: 500 })).events;
    expect(told.map(({ event }) => event.type)).toEqual(['block.added']);
  });

  it('a request to someone I block from another device between the checks and the write is refused', async () => {
    const [me, them] = [await registerUser(t), await registerUser(t)];
    const blockThem = () => api(me).blocks.add.mutate({ userId: them.userId });
    const asking = (await racedBy(me, blockThem)).contacts.request({ userId: them.userId });
    expect(await outcomeOf(asking)).toBe('CONFLICT');
    expect(await requestRows(me, them)).toEqual([]);
  });

  it('a request or a block whose target deletes their account between the checks and the write is NOT_FOUND', async () => {
    for (const write of ['request', 'block'] as const) {
      const [me, them] = [await registerUser(t), await registerUser(t)];
      const deleteThem = () => api(them).me.delete.mutate({ password: PASSWORD });
      const caller = await racedBy(me, deleteThem);
      const writing =
        write === 'request'
          ? caller.contacts.request({ userId: them.userId })
          : caller.blocks.add({ userId: them.userId });
      expect([write, await outcomeOf(writing)]).toEqual([write, 'NOT_FOUND']);
    }
  });
});
