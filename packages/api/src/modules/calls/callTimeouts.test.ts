import { createDb, migrateToLatest, type DB } from '@mvp/db';
import { sql, type Kysely } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Context } from '../../context';
import { AppError } from '../../errors/AppError';
import { finish } from './calls.service';

// SQLite only, the statements themselves; both backends run the job through the server
// (apps/server/test/calls.test.ts, "silent calls end when heartbeats stop").
describe('the timeout job ends an answered call only while it is still silent', () => {
  const NOW = 1_000_000_000;
  const TIMEOUT = 75_000;
  let db: Kysely<DB>;
  let ctx: Context;

  beforeAll(async () => {
    db = createDb('sqlite::memory:');
    await migrateToLatest(db);
    // Rows without accounts: this is about the call's row.
    await sql`pragma foreign_keys = off`.execute(db);
    await db
      .insertInto('user_streams')
      .values([{ user_id: 'caller' }, { user_id: 'callee' }])
      .execute();
    const published: string[] = [];
    ctx = {
      ports: {
        db,
        clock: { now: () => NOW },
        bus: { publish: (channel: string) => void published.push(channel) },
      },
    } as unknown as Context;
  });
  afterAll(() => db.destroy());

  /** An answered call whose callee has been silent past the timeout, as the job reads it. */
  const silentCall = async (id: string) => {
    const stale = NOW - TIMEOUT - 1_000;
    await db
      .insertInto('calls')
      .values({
        id,
        caller_id: 'caller',
        caller_device_id: 'caller-phone',
        callee_id: 'callee',
        callee_device_id: 'callee-phone',
        media: 'audio',
        state: 'accepted',
        created_at: stale - 10_000,
        accepted_at: stale - 5_000,
        caller_beat_at: NOW - 1_000,
        callee_beat_at: stale,
      })
      .execute();
    return db.selectFrom('calls').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
  };
  const stateOf = async (id: string) =>
    (await db.selectFrom('calls').select('state').where('id', '=', id).executeTakeFirstOrThrow())
      .state;

  it('still silent: ended (ice_timeout)', async () => {
    const row = await silentCall('c1');
    const ended = await finish(ctx, row, 'accepted', 'ended', 'ice_timeout', NOW - TIMEOUT);
    expect(ended).toMatchObject({ state: 'ended', end_reason: 'ice_timeout' });
    expect(await stateOf('c1')).toBe('ended');
  });

  it('a beat that came after the job read it: left going (CONFLICT), nothing written', async () => {
    const row = await silentCall('c2');
    // The callee's device beats between the job's read and its write.
    await db.updateTable('calls').set({ callee_beat_at: NOW }).where('id', '=', 'c2').execute();
    const refused = await finish(ctx, row, 'accepted', 'ended', 'ice_timeout', NOW - TIMEOUT).catch(
      (e: unknown) => e,
    );
    expect(refused).toBeInstanceOf(AppError);
    expect((refused as AppError).appCode).toBe('CONFLICT');
    expect(await stateOf('c2')).toBe('accepted');
  });
});
