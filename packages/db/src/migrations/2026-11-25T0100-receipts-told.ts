import { sql, type Kysely } from 'kysely';

// Frozen in time: never edit a migration that has shipped; add a new one.
//
// Receipts go only to the members whose messages a delivered or read move passes. A member's own
// message moves their positions without a receipt (the send path writes no more than it did), so
// what the others were last told is kept apart from the positions: the next mark tells the
// senders of everything from there on. Existing rows count as told up to where they are.
export async function up(db: Kysely<any>): Promise<void> {
  for (const column of ['told_delivered_seq', 'told_read_seq'])
    await db.schema
      .alterTable('conversation_members')
      .addColumn(column, 'bigint', (c) => c.notNull().defaultTo(0))
      .execute();
  await db
    .updateTable('conversation_members')
    .set({ told_delivered_seq: sql`delivered_seq`, told_read_seq: sql`read_seq` })
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const column of ['told_delivered_seq', 'told_read_seq'])
    await db.schema.alterTable('conversation_members').dropColumn(column).execute();
}
