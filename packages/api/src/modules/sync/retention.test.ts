import { createDb, migrateToLatest, type DB } from '@mvp/db';
import { CompiledQuery, sql, type Kysely } from 'kysely';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { statementCounter } from '../../statementCounter.testing';
import { pruneStreams, staleStreams } from './retention';

// SQLite only: the embedded backend is where the plan matters (its statements run on the server's
// one thread). Both backends run pruneStreams through the server in envelopes.test.ts.
describe('pruneStreams', () => {
  const DAY = 24 * 3600 * 1000;
  const now = 100 * DAY;
  const old = now - 31 * DAY;
  const users = ['user-a', 'user-b', 'user-c'];
  let db: Kysely<DB>;

  /** What pruneStreams reads of its context. */
  const contextOf = (database: Kysely<DB>) =>
    ({
      ports: { db: database, clock: { now: () => now } },
      settings: { messaging: { retentionDays: 30 } },
    }) as Parameters<typeof pruneStreams>[0];

  const write = async (userId: string, fromSeq: number, count: number, createdAt: number) => {
    const rows = Array.from({ length: count }, (_, i) => ({
      user_id: userId,
      seq: fromSeq + i,
      device_id: null,
      type: 'receipt',
      payload: '{}',
      created_at: createdAt + i,
    }));
    for (let i = 0; i < rows.length; i += 500)
      await db
        .insertInto('user_events')
        .values(rows.slice(i, i + 500))
        .execute();
  };
  const seqsOf = async (userId: string) =>
    (
      await db
        .selectFrom('user_events')
        .select('seq')
        .where('user_id', '=', userId)
        .orderBy('seq')
        .execute()
    ).map((r) => Number(r.seq));
  const firstSeqOf = async (userId: string) =>
    Number(
      (
        await db
          .selectFrom('user_streams')
          .select('first_seq')
          .where('user_id', '=', userId)
          .executeTakeFirstOrThrow()
      ).first_seq,
    );

  beforeEach(async () => {
    await db?.destroy();
    db = createDb('sqlite::memory:');
    await migrateToLatest(db);
    // Streams without accounts: this is about the statements, not the people.
    await sql`pragma foreign_keys = off`.execute(db);
    await db
      .insertInto('user_streams')
      .values(users.map((user_id) => ({ user_id })))
      .execute();
  });
  afterAll(() => db.destroy());

  it('finds stale streams through the created_at index, not by reading every event', async () => {
    await write('user-a', 1, 50, old);
    const { sql: text, parameters } = staleStreams(db, now - 30 * DAY).compile();
    const plan = await db.executeQuery<{ detail: string }>(
      CompiledQuery.raw(`explain query plan ${text}`, [...parameters]),
    );
    const details = plan.rows.map((r) => r.detail);
    expect(details.join('\n')).toMatch(/user_events USING (COVERING )?INDEX user_events_created/);
    // The primary key would mean a walk over every event of every stream.
    expect(details.join('\n')).not.toMatch(/sqlite_autoindex_user_events/);
  });

  it('deletes every stale event across batches, keeps recent ones and moves first_seq', async () => {
    await write('user-a', 1, 2500, old);
    await write('user-a', 2501, 5, now - DAY);
    await write('user-b', 1, 3, old + 5000);
    await write('user-c', 1, 4, now - DAY);

    expect(await pruneStreams(contextOf(db))).toBe(2);

    expect(await seqsOf('user-a')).toEqual([2501, 2502, 2503, 2504, 2505]);
    expect(await firstSeqOf('user-a')).toBe(2501);
    expect(await seqsOf('user-b')).toEqual([]);
    expect(await firstSeqOf('user-b')).toBe(4);
    expect(await seqsOf('user-c')).toEqual([1, 2, 3, 4]);
    expect(await firstSeqOf('user-c')).toBe(1);
    // Nothing stale left: a second run has nothing to do.
    expect(await pruneStreams(contextOf(db))).toBe(0);
  });

  it('lets other work run between batches', async () => {
    await write('user-a', 1, 3500, old);
    const deletes = statementCounter((node) => node.kind === 'DeleteQueryNode');
    await pruneStreams(contextOf(db.withPlugin(deletes.plugin)));

    expect(deletes.count).toBe(4);
    expect(deletes.beforeOthers).toBeGreaterThan(0);
    expect(deletes.beforeOthers).toBeLessThan(4);
  });

  it('does nothing once its signal has aborted', async () => {
    await write('user-a', 1, 10, old);
    const stopped = new AbortController();
    stopped.abort();
    expect(await pruneStreams(contextOf(db), stopped.signal)).toBe(0);
    expect(await seqsOf('user-a')).toHaveLength(10);
  });
});
