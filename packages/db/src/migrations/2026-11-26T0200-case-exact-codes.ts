import { MysqlAdapter, sql, type Kysely } from 'kysely';

// Frozen in time: never edit a migration that has shipped; add a new one.
//
// MySQL only: a message's client id and an invite's code compare as bytes, as the edit ids of
// 2026-11-26T0000 do. Under the case-insensitive collation tables get by default, a send whose
// client id differed from an earlier one only in case (the SDK's ids are mixed case) was answered
// with the earlier message and never stored; two invite codes that differ only in case are two
// codes. Both are ASCII by their zod schemas. SQLite compares bytes already.
//
// Upgrading: on MySQL a column's new character set copies its table, and writes to it wait
// meanwhile: on a large `messages` table, sends stop for the copy. Plan for it (or run it with
// an online schema-change tool first; the migration is then a no-op change).
const columns = [
  { table: 'messages', column: 'client_message_id', type: 'VARCHAR(64)' },
  { table: 'invites', column: 'code', type: 'VARCHAR(32)' },
];

export async function up(db: Kysely<any>): Promise<void> {
  if (!(db.getExecutor().adapter instanceof MysqlAdapter)) return;
  for (const { table, column, type } of columns)
    await sql`ALTER TABLE ${sql.table(table)} MODIFY ${sql.ref(column)} ${sql.raw(type)} CHARACTER SET ascii COLLATE ascii_bin NOT NULL`.execute(
      db,
    );
}

/** Back to each table's own collation (fails if ids that differ only in case were stored). */
export async function down(db: Kysely<any>): Promise<void> {
  if (!(db.getExecutor().adapter instanceof MysqlAdapter)) return;
  for (const { table, column, type } of columns) {
    const { rows } = await sql<{ collation: string }>`
      SELECT table_collation AS collation FROM information_schema.tables
      WHERE table_schema = DATABASE() AND table_name = ${table}`.execute(db);
    const collation = sql.raw(rows[0]!.collation);
    const charset = sql.raw(rows[0]!.collation.split('_')[0]!);
    await sql`ALTER TABLE ${sql.table(table)} MODIFY ${sql.ref(column)} ${sql.raw(type)} CHARACTER SET ${charset} COLLATE ${collation} NOT NULL`.execute(
      db,
    );
  }
}
