import { MysqlAdapter, sql, type Kysely } from 'kysely';

// Frozen in time: never edit a migration that has shipped; add a new one.
//
// MySQL only: a reaction's emoji compares as bytes. Under the case- and accent-insensitive
// collations tables get by default, many emoji weigh the same (MariaDB's utf8mb4_unicode_ci
// equates 😮, 🎉 and 👍), so a member's second emoji on a message hit the primary key as a
// duplicate and was silently dropped, and taking one back deleted the others. SQLite compares
// bytes already.
export async function up(db: Kysely<any>): Promise<void> {
  if (!(db.getExecutor().adapter instanceof MysqlAdapter)) return;
  await sql`ALTER TABLE reactions MODIFY emoji VARCHAR(32) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL`.execute(
    db,
  );
}

/** Back to the table's own collation (fails if a member has emoji that compare equal there). */
export async function down(db: Kysely<any>): Promise<void> {
  if (!(db.getExecutor().adapter instanceof MysqlAdapter)) return;
  const { rows } = await sql<{ collation: string }>`
    SELECT table_collation AS collation FROM information_schema.tables
    WHERE table_schema = DATABASE() AND table_name = 'reactions'`.execute(db);
  const collation = sql.raw(rows[0]!.collation);
  await sql`ALTER TABLE reactions MODIFY emoji VARCHAR(32) CHARACTER SET utf8mb4 COLLATE ${collation} NOT NULL`.execute(
    db,
  );
}
