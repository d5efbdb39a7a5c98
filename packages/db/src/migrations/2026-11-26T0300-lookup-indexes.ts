import { MysqlAdapter, sql, type Kysely } from 'kysely';

// Frozen in time: never edit a migration that has shipped; add a new one.
//
// Indexes for lookups that read whole tables, or every row of a user, to return a few rows.
//
// Foreign-key children: MySQL indexes each foreign key's column itself (`device_id`, `user_id`,
// `contact_id` on these tables), SQLite does not, so on SQLite a lookup by the column (a device's
// live sessions for its keys) and a parent's ON DELETE CASCADE (a user deleted) read the whole
// table. Those four are created on SQLite only: on MySQL they would repeat the foreign key's own.
// (MySQL 8.4 had no foreign keys, so no such index, until 2026-11-26T0400 added the keys: its
// ALTERs index these columns.)
const foreignKeyChildren = [
  { name: 'sessions_device', table: 'sessions', columns: ['device_id'] },
  { name: 'reactions_user', table: 'reactions', columns: ['user_id'] },
  { name: 'contacts_contact', table: 'contacts', columns: ['contact_id'] },
  { name: 'conversation_bans_user', table: 'conversation_bans', columns: ['user_id'] },
];

// On both dialects:
// - hidden messages by conversation and seq (disappearing messages delete them every second,
//   a conversation's deletion cascades; the primary key leads with user_id). MySQL's own
//   `conversation_id` index has no seq, so it reads every hidden row of the conversation; MySQL
//   drops that index for this one, which serves the foreign key from then on.
// - a user's calls in id order, one index per side: history pages by id (UUIDv7, the caller's
//   clock, so not created_at's order) and merges the two sides.
// - a user's live calls, per side: a call's start looked for its two people among every
//   ringing or accepted call.
// - sessions by when they expired or were revoked: the jobs delete those that ended long ago.
const both = [
  {
    name: 'message_hidden_conversation',
    table: 'message_hidden',
    columns: ['conversation_id', 'seq'],
  },
  { name: 'calls_caller_id', table: 'calls', columns: ['caller_id', 'id'] },
  { name: 'calls_callee_id', table: 'calls', columns: ['callee_id', 'id'] },
  { name: 'calls_caller_state', table: 'calls', columns: ['caller_id', 'state'] },
  { name: 'calls_callee_state', table: 'calls', columns: ['callee_id', 'state'] },
  { name: 'sessions_expires', table: 'sessions', columns: ['expires_at'] },
  { name: 'sessions_revoked', table: 'sessions', columns: ['revoked_at'] },
];

const mysqlOf = (db: Kysely<any>) => db.getExecutor().adapter instanceof MysqlAdapter;

export async function up(db: Kysely<any>): Promise<void> {
  const indexes = mysqlOf(db) ? both : [...foreignKeyChildren, ...both];
  for (const { name, table, columns } of indexes)
    await db.schema.createIndex(name).on(table).columns(columns).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  if (!mysqlOf(db)) {
    // SQLite's DROP INDEX names no table.
    for (const { name } of [...foreignKeyChildren, ...both].reverse())
      await db.schema.dropIndex(name).execute();
    return;
  }
  for (const { name, table, columns } of [...both].reverse()) {
    // MySQL refuses to drop the one index left on a foreign key's column: the key gets its own
    // index back (named as MySQL named it) in the same statement. Only a foreign key's: the
    // sessions' indexes had none before.
    const { rows } = await sql<{ foreignKey: number; others: number }>`
      SELECT
        (SELECT COUNT(*) FROM information_schema.key_column_usage
          WHERE table_schema = DATABASE() AND table_name = ${table}
            AND column_name = ${columns[0]} AND referenced_table_name IS NOT NULL) AS foreignKey,
        (SELECT COUNT(*) FROM information_schema.statistics
          WHERE table_schema = DATABASE() AND table_name = ${table} AND index_name <> ${name}
            AND seq_in_index = 1 AND column_name = ${columns[0]}) AS others`.execute(db);
    const first = sql.ref(columns[0]!);
    const keepsForeignKey = Number(rows[0]!.foreignKey) > 0 && Number(rows[0]!.others) === 0;
    await (
      keepsForeignKey
        ? sql`ALTER TABLE ${sql.table(table)} ADD INDEX ${first} (${first}), DROP INDEX ${sql.ref(name)}`
        : sql`ALTER TABLE ${sql.table(table)} DROP INDEX ${sql.ref(name)}`
    ).execute(db);
  }
}
