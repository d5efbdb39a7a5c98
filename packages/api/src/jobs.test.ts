import { randomUUID } from 'node:crypto';
import { createDb, migrateToLatest, type DB } from '@mvp/db';
import type { Kysely } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JOBS } from './jobs';
import { displayNameContext, phoneContext } from './modules/auth/identity';
import { createFieldCipher } from './security/fieldCipher';
import { statementCounter } from './statementCounter.testing';

// SQLite only: the embedded backend is where a long statement holds up the server (it runs on the
// event loop's thread). Both backends rotate keys through the server in personalData.test.ts.
describe('reencryptPersonalData', () => {
  const key = (fill: number) => new Uint8Array(32).fill(fill);
  const k1 = { id: 'k1', key: key(1) };
  const k2 = { id: 'k2', key: key(2) };
  const before = createFieldCipher({ dataKeys: [k1], blindIndexKey: key(9) });
  const after = createFieldCipher({ dataKeys: [k2, k1], blindIndexKey: key(9) });
  let db: Kysely<DB>;
  // More than two windows of users; every third under the newer key already.
  const users = Array.from({ length: 2500 }, (_, i) => ({ id: randomUUID(), old: i % 3 !== 0 }));

  beforeAll(async () => {
    db = createDb('sqlite::memory:');
    await migrateToLatest(db);
    const rows = users.map(({ id, old }, i) => {
      const cipher = old ? before : after;
      return {
        id,
        unique_id: `u${i}`,
        username: `user${i}`,
        phone_ciphertext: i % 2 ? cipher.encrypt(`+4915100${i}`, phoneContext(id)) : null,
        display_name_ciphertext: cipher.encrypt(`User ${i}`, displayNameContext(id)),
        password_hash: 'not-a-hash',
        require_otp_login: 0,
        created_at: 1,
        updated_at: 1,
        last_active_at: 1,
      };
    });
    for (let i = 0; i < rows.length; i += 200)
      await db
        .insertInto('users')
        .values(rows.slice(i, i + 200))
        .execute();
  });
  afterAll(() => db.destroy());

  it('re-encrypts every row under an older key, a window at a time, letting other work run between windows', async () => {
    const updates = statementCounter((node) => node.kind === 'UpdateQueryNode');
    const ctx = {
      ports: { db: db.withPlugin(updates.plugin), cipher: after },
      log: { error: () => undefined },
    } as unknown as Parameters<typeof JOBS.reencryptPersonalData>[0];

    const old = users.filter((u) => u.old).length;
    expect(await JOBS.reencryptPersonalData(ctx)).toBe(old);

    expect(updates.count).toBe(old);
    expect(updates.beforeOthers).toBeGreaterThan(0);
    expect(updates.beforeOthers).toBeLessThan(old);
    const rows = await db
      .selectFrom('users')
      .select(['id', 'unique_id', 'phone_ciphertext', 'display_name_ciphertext'])
      .execute();
    expect(rows).toHaveLength(users.length);
    for (const row of rows) {
      const i = Number(row.unique_id.slice(1));
      expect(row.display_name_ciphertext).toMatch(/^v1\.k2\./);
      expect(after.decrypt(row.display_name_ciphertext, displayNameContext(row.id))).toBe(
        `User ${i}`,
      );
      if (row.phone_ciphertext) expect(row.phone_ciphertext).toMatch(/^v1\.k2\./);
    }
    // All under the newest key now: a second run has nothing to do.
    expect(await JOBS.reencryptPersonalData(ctx)).toBe(0);
  });
});

describe('pruneEndedSessions', () => {
  const DAY = 24 * 3600 * 1000;
  let db: Kysely<DB>;
  const user = randomUUID();
  const device = randomUUID();
  const [ended, live] = [randomUUID(), randomUUID()];

  beforeAll(async () => {
    db = createDb('sqlite::memory:');
    await migrateToLatest(db);
    await db
      .insertInto('users')
      .values({
        id: user,
        unique_id: 'u',
        username: 'u',
        phone_ciphertext: null,
        display_name_ciphertext: 'x',
        password_hash: 'not-a-hash',
        require_otp_login: 0,
        created_at: 1,
        updated_at: 1,
        last_active_at: 1,
      })
      .execute();
    await db
      .insertInto('devices')
      .values({
        id: device,
        user_id: user,
        name: 'd',
        platform: 'node',
        created_at: 1,
        last_seen_at: 1,
      })
      .execute();
    const now = Date.now();
    await db
      .insertInto('sessions')
      .values(
        [
          { id: ended, revoked_at: now - 31 * DAY, expires_at: now + DAY },
          { id: live, revoked_at: null, expires_at: now + DAY },
        ].map((s) => ({
          ...s,
          user_id: user,
          device_id: device,
          created_at: 1,
          last_seen_at: 1,
          revoked_reason: null,
        })),
      )
      .execute();
    // A month of rotations on the ended session; one token on the live one.
    const tokens = [
      ...Array.from({ length: 2500 }, (_, i) => ({ session_id: ended, n: i })),
      { session_id: live, n: 0 },
    ].map(({ session_id, n }) => ({
      token_hash: `${session_id}-${n}`,
      session_id,
      created_at: 1,
      expires_at: now + DAY,
      used_at: null,
      parent_hash: null,
    }));
    for (let i = 0; i < tokens.length; i += 500)
      await db
        .insertInto('refresh_tokens')
        .values(tokens.slice(i, i + 500))
        .execute();
  });
  afterAll(() => db.destroy());

  it("deletes an ended session's tokens a batch at a time, letting other work run between batches", async () => {
    const tokenDeletes = statementCounter(
      (node) =>
        node.kind === 'DeleteQueryNode' && JSON.stringify(node.from).includes('refresh_tokens'),
    );
    const ctx = {
      ports: { db: db.withPlugin(tokenDeletes.plugin), clock: { now: () => Date.now() } },
    } as unknown as Parameters<typeof JOBS.pruneEndedSessions>[0];

    expect(await JOBS.pruneEndedSessions(ctx)).toBe(1);

    // 2500 tokens, at most 1000 a statement.
    expect(tokenDeletes.count).toBe(3);
    expect(tokenDeletes.beforeOthers).toBeGreaterThan(0);
    expect(tokenDeletes.beforeOthers).toBeLessThan(3);
    const sessions = await db.selectFrom('sessions').select('id').execute();
    expect(sessions.map((s) => s.id)).toEqual([live]);
    const tokens = await db.selectFrom('refresh_tokens').select('session_id').execute();
    expect(tokens.map((t) => t.session_id)).toEqual([live]);
  });
});
