import { createDb, migrateToLatest, type DB } from '@mvp/db';
import { CompiledQuery, type Kysely } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callsOnSide } from './history.service';
import { liveCallsOf, ringingCallsOf } from './ringing.service';

// SQLite only: the embedded backend is where the plan matters (its statements run on the server's
// one thread). Both backends run these through the server in apps/server/test (calls.test.ts,
// lookupIndexes.test.ts).
describe('call queries read one user’s rows through an index, in order', () => {
  let db: Kysely<DB>;
  beforeAll(async () => {
    db = createDb('sqlite::memory:');
    await migrateToLatest(db);
  });
  afterAll(() => db.destroy());

  const planOf = async (query: CompiledQuery) =>
    (
      await db.executeQuery<{ detail: string }>(
        CompiledQuery.raw(`explain query plan ${query.sql}`, [...query.parameters]),
      )
    ).rows
      .map((r) => r.detail)
      .join('\n');

  it.each([
    ['caller_id', 'calls_caller_id'],
    ['callee_id', 'calls_callee_id'],
  ] as const)('history on the %s side: the (side, id) index, no sort', async (side, index) => {
    const id = '019ac000-0000-7000-8000-000000000000';
    for (const before of [undefined, id]) {
      const plan = await planOf(callsOnSide(db, side, 'user-a', before, 31).compile());
      const range = before ? ` AND id<\\?` : '';
      expect(plan).toMatch(
        new RegExp(`^SEARCH calls USING INDEX ${index} \\(${side}=\\?${range}\\)$`),
      );
      // A sort would mean every call of the user read first (calls are never deleted).
      expect(plan).not.toMatch(/TEMP B-TREE/);
    }
  });

  it('live calls of two people: each side on its (side, state) index, not every live call', async () => {
    const plan = await planOf(liveCallsOf.template(db, 2).query);
    expect(plan).toMatch(
      /SEARCH calls USING INDEX calls_caller_state \(caller_id=\? AND state=\?\)/,
    );
    expect(plan).toMatch(
      /SEARCH calls USING INDEX calls_callee_state_at \(callee_id=\? AND state=\?\)/,
    );
    expect(plan).not.toMatch(/calls_state|SCAN calls/);
  });

  it('a cold start’s ringing calls: the callee’s (side, state) index, not every call they took', async () => {
    const plan = await planOf(ringingCallsOf(db, 'user-a', 0).compile());
    expect(plan).toMatch(
      /^SEARCH calls USING INDEX calls_callee_state_at \(callee_id=\? AND state=\? AND created_at>\?\)$/,
    );
  });

  it('the calls table keeps the indexes its queries read: the first migration’s (side, created_at) ones are gone', async () => {
    const { rows } = await db.executeQuery<{ name: string }>(
      CompiledQuery.raw(
        `select name from sqlite_master where type = 'index' and tbl_name = 'calls' and name not like 'sqlite_%' order by name`,
      ),
    );
    expect(rows.map((r) => r.name)).toEqual([
      'calls_callee_id',
      'calls_callee_state_at',
      'calls_caller_id',
      'calls_caller_state',
      'calls_state',
    ]);
  });
});
