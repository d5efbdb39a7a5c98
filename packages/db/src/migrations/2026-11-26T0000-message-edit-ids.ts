import { MysqlAdapter, sql, type Kysely } from 'kysely';

// Frozen in time: never edit a migration that has shipped; add a new one.
//
// An edit may name itself (the SDK's outbox entry id), as a send does with its client message
// id: an edit retried after its answer was lost is applied once, even when a newer edit (from
// another device) came in between, and is answered after its sender left. Rows go with their
// message when it is purged, and with the conversation.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('message_edits')
    .addColumn('conversation_id', 'varchar(36)', (c) =>
      c.notNull().references('conversations.id').onDelete('cascade'),
    )
    .addColumn('seq', 'bigint', (c) => c.notNull())
    .addColumn('client_edit_id', 'varchar(64)', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('message_edits_pk', ['conversation_id', 'seq', 'client_edit_id'])
    .execute();
  // MySQL compares strings without case by default: two ids that differ only in case are two
  // edits. SQLite compares bytes already.
  if (db.getExecutor().adapter instanceof MysqlAdapter)
    await sql`ALTER TABLE message_edits MODIFY client_edit_id VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL`.execute(
      db,
    );
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('message_edits').execute();
}
