import { Migrator, sql, type Kysely } from 'kysely';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createDb } from './createDb';
import { migrateToLatest } from './migrate';
import { migrations } from './migrations';
import type { DB } from './schema';

// SQLite only: there the plan matters most (statements run on the server's one thread), and
// SQLite, unlike MySQL, indexes no foreign key by itself. (The migration's down() was checked by
// hand on MariaDB; a test running it there would race the other test files' migrateToLatest on
// the shared database.)
describe('lookup indexes on SQLite (2026-11-26T0300, T0500, T0600)', () => {
  let db: Kysely<DB>;
  beforeEach(async () => {
    db = createDb('sqlite::memory:');
    await migrateToLatest(db);
  });
  afterEach(() => db.destroy());

  const planOf = async (text: string) =>
    (await sql.raw<{ detail: string }>(`explain query plan ${text}`).execute(db)).rows
      .map((r) => r.detail)
      .join('\n');

  const lookups = [
    {
      // keys.repo liveDeviceKeys: a device's live sessions, per device key.
      text: `select k.* from device_keys k where k.user_id in ('a', 'b') and exists (
        select s.id from sessions s where s.device_id = k.device_id
        and s.revoked_at is null and s.expires_at > 1)`,
      uses: /SEARCH s (EXISTS )?USING INDEX sessions_device \(device_id=\?\)/,
      scans: /SCAN s|AUTOMATIC/,
    },
    {
      // messages/expiry: expired seqs of one conversation, every second.
      text: `delete from message_hidden where conversation_id = 'c' and seq in (1, 2, 3)`,
      uses: /SEARCH message_hidden USING (COVERING )?INDEX message_hidden_conversation \(conversation_id=\? AND seq=\?\)/,
      scans: /SCAN message_hidden/,
    },
    // A user's deletion cascades to these (SQLite looks the children up as these do).
    {
      text: `select * from reactions where user_id = 'u'`,
      uses: /SEARCH reactions USING (COVERING )?INDEX reactions_user/,
      scans: /SCAN reactions/,
    },
    {
      text: `select * from contacts where contact_id = 'u'`,
      uses: /SEARCH contacts USING (COVERING )?INDEX contacts_contact/,
      scans: /SCAN contacts/,
    },
    {
      text: `select * from conversation_bans where user_id = 'u'`,
      uses: /SEARCH conversation_bans USING (COVERING )?INDEX conversation_bans_user/,
      scans: /SCAN conversation_bans/,
    },
    {
      // jobs.ts pruneEndedSessions: sessions that ended long ago, every jobs interval.
      text: `select id from sessions where expires_at < 1 or revoked_at < 1 limit 200`,
      uses: /SEARCH sessions USING (COVERING )?INDEX sessions_expires[\s\S]*SEARCH sessions USING (COVERING )?INDEX sessions_revoked/,
      scans: /SCAN sessions/,
    },
  ];

  it.each(lookups)('searches an index, not the table: $uses', async ({ text, uses, scans }) => {
    const plan = await planOf(text);
    expect(plan).toMatch(uses);
    expect(plan).not.toMatch(scans);
  });

  it('down() drops exactly its indexes, and up() again brings them back', async () => {
    const indexes = async () =>
      (
        await sql<{ name: string }>`
          select name from sqlite_master where type = 'index' and name not like 'sqlite_%'
          order by name`.execute(db)
      ).rows.map((r) => r.name);
    const added = [
      'calls_callee_id',
      'calls_callee_state',
      'calls_caller_id',
      'calls_caller_state',
      'contacts_contact',
      'conversation_bans_user',
      'message_hidden_conversation',
      'reactions_user',
      'sessions_device',
      'sessions_expires',
      'sessions_revoked',
    ];
    const latest = await indexes();
    const migrator = new Migrator({ db, provider: { getMigrations: async () => migrations } });
    // Later migrations change indexes too (2026-11-26T0500): compare with this one's own state.
    expect((await migrator.migrateTo('2026-11-26T0300-lookup-indexes')).error).toBeUndefined();
    const withIt = await indexes();
    expect(withIt).toEqual(expect.arrayContaining(added));

    const { error, results } = await migrator.migrateTo('2026-11-26T0200-case-exact-codes');
    expect(error).toBeUndefined();
    expect(results).toEqual([
      { migrationName: '2026-11-26T0300-lookup-indexes', direction: 'Down', status: 'Success' },
    ]);
    expect(await indexes()).toEqual(withIt.filter((name) => !added.includes(name)));
    expect(await planOf(lookups[1]!.text)).toMatch(/SCAN message_hidden/);

    expect((await migrateToLatest(db)).applied[0]).toBe('2026-11-26T0300-lookup-indexes');
    expect(await indexes()).toEqual(latest);
  });

  it('2026-11-26T0500: down() brings back the calls indexes it replaced, up() again fits them', async () => {
    const callIndexes = async () =>
      (
        await sql<{ name: string }>`
          select name from sqlite_master where type = 'index' and tbl_name = 'calls'
            and name not like 'sqlite_%' order by name`.execute(db)
      ).rows.map((r) => r.name);
    const latest = await callIndexes();
    const migrator = new Migrator({ db, provider: { getMigrations: async () => migrations } });
    // Later migrations change other tables' indexes (2026-11-26T0600): from this one's own state.
    expect((await migrator.migrateTo('2026-11-26T0500-unused-call-indexes')).error).toBeUndefined();
    const { error, results } = await migrator.migrateTo('2026-11-26T0400-table-foreign-keys');
    expect(error).toBeUndefined();
    expect(results?.map((r) => r.migrationName)).toEqual(['2026-11-26T0500-unused-call-indexes']);
    expect(await callIndexes()).toEqual([
      'calls_callee',
      'calls_callee_id',
      'calls_callee_state',
      'calls_caller',
      'calls_caller_id',
      'calls_caller_state',
      'calls_state',
    ]);
    await migrateToLatest(db);
    expect(await callIndexes()).toEqual(latest);
  });

  // The plan of the query that reads it: packages/api conversations/snapshotPages.test.ts.
  it('2026-11-26T0600: memberships by (user_id, conversation_id); down() restores the old index', async () => {
    const memberIndexes = async () =>
      (
        await sql<{ name: string }>`
          select name from sqlite_master where type = 'index'
            and tbl_name = 'conversation_members' and name not like 'sqlite_%'`.execute(db)
      ).rows.map((r) => r.name);
    const migrator = new Migrator({ db, provider: { getMigrations: async () => migrations } });
    expect((await migrator.migrateTo('2026-11-26T0500-unused-call-indexes')).error).toBeUndefined();
    expect(await memberIndexes()).toEqual(['conversation_members_user']);
    await migrateToLatest(db);
    expect(await memberIndexes()).toEqual(['conversation_members_user_conversation']);
  });
});
