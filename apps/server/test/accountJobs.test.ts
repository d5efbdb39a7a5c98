import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  runJobsOnce,
  SESSION_REVOKED_CHANNEL,
  type EventBus,
  type KeyValue,
  type Ports,
} from '@mvp/api';
import { clientWithToken, DEVICE, PASSWORD, registerUser, type Account } from './helpers/accounts';
import { codeOf } from './helpers/errors';
import { eventQueue } from './helpers/collect';
import { startServer, type TestServer } from './helpers/startServer';
import { backendLabel, testDatabaseUrl } from './helpers/env';

const DAY = 24 * 3600 * 1000;
const JOB_LOCK = 'job:deleteInactiveAccounts';
/** Short enough to run out during a test: renewals come every third of it. */
const LOCK_MS = 600;

/**
 * The server's ports for one jobs run, with the inactivity job's lock renewals reported and the
 * job held inside its first deletion (when it announces the ended sessions) until `resume`.
 */
function heldJobPorts(ports: Ports) {
  const renewals = eventQueue<boolean>();
  const deleting = eventQueue<true>();
  let resume!: () => void;
  const resumed = new Promise<void>((r) => (resume = r));
  const kv: KeyValue = {
    ...ports.kv,
    async acquireLock(name, ttlMs) {
      const lock = await ports.kv.acquireLock(name, ttlMs);
      if (!lock || name !== JOB_LOCK) return lock;
      return {
        release: () => lock.release(),
        async extend(ms) {
          const held = await lock.extend(ms);
          renewals.push(held);
          return held;
        },
      };
    },
  };
  const bus: EventBus = {
    ...ports.bus,
    async publish(channel, message) {
      if (channel === SESSION_REVOKED_CHANNEL) {
        deleting.push(true);
        await resumed;
      }
      await ports.bus.publish(channel, message);
    },
  };
  return { ports: { ...ports, kv, bus }, renewals, deleting, resume };
}

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

  it('deletes sessions that ended over 30 days ago, with their refresh tokens, and keeps the rest', async () => {
    const [live, signedOutLongAgo, signedOutYesterday, expiredLongAgo] = [
      await registerUser(t),
      await registerUser(t),
      await registerUser(t),
      await registerUser(t),
    ];
    const db = t.server.infra.ports.db;
    // On the real clock, as above.
    const age = (account: Account, values: { revoked_at?: number; expires_at?: number }) =>
      db.updateTable('sessions').set(values).where('id', '=', account.sessionId).execute();
    await age(signedOutLongAgo, { revoked_at: Date.now() - 31 * DAY });
    await age(signedOutYesterday, { revoked_at: Date.now() - DAY });
    await age(expiredLongAgo, { expires_at: Date.now() - 31 * DAY });
    const all = [live, signedOutLongAgo, signedOutYesterday, expiredLongAgo];
    const tokensOf = async (account: Account) =>
      Number(
        (
          await db
            .selectFrom('refresh_tokens')
            .select((eb) => eb.fn.countAll<number>().as('n'))
            .where('session_id', '=', account.sessionId)
            .executeTakeFirstOrThrow()
        ).n,
      );
    expect(await Promise.all(all.map(tokensOf))).toEqual([1, 1, 1, 1]);

    const results = await runJobsOnce(t.server.infra.ports, t.server.settings);

    // Ran; not its count: another test file's jobs run on a shared database may have deleted
    // these sessions first. Which rows are left is the test.
    expect(results.pruneEndedSessions).not.toBeNull();
    const left = await db
      .selectFrom('sessions')
      .select('id')
      .where(
        'id',
        'in',
        all.map((a) => a.sessionId),
      )
      .execute();
    expect(left.map((s) => s.id).sort()).toEqual(
      [live.sessionId, signedOutYesterday.sessionId].sort(),
    );
    expect(await Promise.all(all.map(tokensOf))).toEqual([1, 0, 1, 0]);
    // A deleted session is refused as an ended one is; the live one goes on.
    expect(
      await codeOf(
        t.client.api.auth.refresh.mutate({ refreshToken: signedOutLongAgo.refreshToken }),
      ),
    ).toBe('UNAUTHORIZED');
    const refreshed = await t.client.api.auth.refresh.mutate({ refreshToken: live.refreshToken });
    expect(await clientWithToken(t, refreshed.accessToken).api.me.get.query()).toMatchObject({
      id: live.userId,
    });
  });

  it('a job runs on one instance at a time (KeyValue lock)', async () => {
    const lock = await t.server.infra.ports.kv.acquireLock('job:deleteInactiveAccounts', 60_000);
    const results = await runJobsOnce(t.server.infra.ports, t.server.settings);
    await lock!.release();
    expect(results.deleteInactiveAccounts).toBeNull();
    expect(results.reencryptPersonalData).not.toBeNull();
  });

  const idleUser = async () => {
    const { userId } = await registerUser(t);
    await t.server.infra.ports.db
      .updateTable('users')
      .set({ last_active_at: Date.now() - 31 * DAY })
      .where('id', '=', userId)
      .execute();
  };

  it('a run longer than its lock keeps it: another instance is refused throughout', async () => {
    await idleUser();
    const { kv } = t.server.infra.ports;
    const held = heldJobPorts(t.server.infra.ports);
    const run = runJobsOnce(held.ports, t.server.settings, LOCK_MS);
    await held.deleting.next();
    // Five renewals a third of the lease apart: the first lease ran out well before the last.
    for (let i = 0; i < 5; i++) expect(await held.renewals.next()).toBe(true);
    expect(await kv.acquireLock(JOB_LOCK, LOCK_MS)).toBeNull();
    held.resume();
    expect((await run).deleteInactiveAccounts).toBeGreaterThanOrEqual(1);
    const after = await kv.acquireLock(JOB_LOCK, LOCK_MS); // released at the end of the run
    expect(after).not.toBeNull();
    await after!.release();
  });

  it('a run whose lock was taken stops after the deletion in progress', async () => {
    for (let i = 0; i < 3; i++) await idleUser();
    const { kv } = t.server.infra.ports;
    const held = heldJobPorts(t.server.infra.ports);
    const run = runJobsOnce(held.ports, t.server.settings, LOCK_MS);
    await held.deleting.next();
    // The lease ran out (a stall longer than it) and another instance took the lock.
    await kv.del(`lock:${JOB_LOCK}`);
    const taken = await kv.acquireLock(JOB_LOCK, 60_000);
    expect(taken).not.toBeNull();
    let stillHeld = true;
    while (stillHeld) stillHeld = await held.renewals.next();
    held.resume();
    // Only the account in progress; the others are left to the lock's new holder.
    expect((await run).deleteInactiveAccounts).toBe(1);
    expect(await kv.acquireLock(JOB_LOCK, LOCK_MS)).toBeNull(); // not taken back, nor released
    expect(
      t.logs.lines.some((l) => l.event === 'job_lock_lost' && l.job === 'deleteInactiveAccounts'),
    ).toBe(true);
    await taken!.release();
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
