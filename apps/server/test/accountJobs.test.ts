import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runJobsOnce } from '@mvp/api';
import { clientWithToken, DEVICE, PASSWORD, registerUser } from './helpers/accounts';
import { startServer, type TestServer } from './helpers/startServer';
import { backendLabel, testDatabaseUrl } from './helpers/env';

const DAY = 24 * 3600 * 1000;

describe(`account jobs (${backendLabel})`, () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startServer({}, { auth: { deleteInactiveAfterDays: 30 } });
  });
  afterAll(() => t.stop());

  it('deletes accounts inactive for the configured period, and only those', async () => {
    const idle = await registerUser(t);
    const active = await registerUser(t);
    // Age one account on the real clock (not a moved clock: on a shared test database every other
    // test's users would look idle too).
    const db = t.server.infra.ports.db;
    await db
      .updateTable('users')
      .set({ last_active_at: Date.now() - 31 * DAY })
      .where('id', '=', idle.userId)
      .execute();
    const results = await runJobsOnce(t.server.infra.ports, t.server.settings);
    expect(results.deleteInactiveAccounts).toBeGreaterThanOrEqual(1);
    expect(
      await db.selectFrom('users').select('id').where('id', '=', idle.userId).executeTakeFirst(),
    ).toBeUndefined();
    expect(
      await db.selectFrom('users').select('id').where('id', '=', active.userId).executeTakeFirst(),
    ).toBeDefined();
    expect(
      await clientWithToken(t, idle.accessToken)
        .api.me.get.query()
        .catch(() => 'refused'),
    ).toBe('refused');
  });

  it('a job runs on one instance at a time (KeyValue lock)', async () => {
    const lock = await t.server.infra.ports.kv.acquireLock('job:deleteInactiveAccounts', 60_000);
    const results = await runJobsOnce(t.server.infra.ports, t.server.settings);
    await lock!.release();
    expect(results.deleteInactiveAccounts).toBeNull();
    expect(results.reencryptPersonalData).not.toBeNull();
  });
});

describe(`password hashes follow the configured cost (${backendLabel})`, () => {
  const databaseUrl = testDatabaseUrl.startsWith('sqlite')
    ? `sqlite:${join(mkdtempSync(join(tmpdir(), 'mvp-rehash-')), 'mvp.db')}`
    : testDatabaseUrl;
  const dataDir = mkdtempSync(join(tmpdir(), 'mvp-rehash-data-'));
  const servers: TestServer[] = [];
  afterAll(async () => {
    await Promise.all(servers.map((s) => s.stop()));
  });

  it('rehashes at the next login when the parameters grow', async () => {
    const a = await startServer({ databaseUrl, dataDir });
    servers.push(a);
    const account = await registerUser(a);
    const hashOf = async (t: TestServer) =>
      (
        await t.server.infra.ports.db
          .selectFrom('users')
          .select('password_hash')
          .where('id', '=', account.userId)
          .executeTakeFirstOrThrow()
      ).password_hash;
    expect(await hashOf(a)).toMatch(/^\$argon2id\$v=19\$m=19456,t=2,p=1\$/);
    await a.stop();

    const b = await startServer(
      { databaseUrl, dataDir },
      { auth: { argon2: { memoryCost: 24_576, timeCost: 3, parallelism: 1 } } },
    );
    servers.push(b);
    const login = await b.client.api.auth.login.mutate({
      identifier: account.username,
      password: PASSWORD,
      device: DEVICE,
    });
    expect(login.status).toBe('ok');
    expect(await hashOf(b)).toMatch(/^\$argon2id\$v=19\$m=24576,t=3,p=1\$/);
    if (login.status === 'ok')
      expect((await clientWithToken(b, login.accessToken).api.me.get.query()).id).toBe(
        account.userId,
      );
  });
});
