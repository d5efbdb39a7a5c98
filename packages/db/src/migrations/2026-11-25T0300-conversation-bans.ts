import type { Kysely } from 'kysely';

// Frozen in time: never edit a migration that has shipped; add a new one.
//
// A member an admin removed may not come back by invite, as in Signal ("an admin removed you"):
// the group's link is usually still open, and a removal that the removed member undoes with one
// tap is no removal. An admin adding them back lifts it. Leaving of one's own accord bans no one.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('conversation_bans')
    .addColumn('conversation_id', 'varchar(36)', (c) =>
      c.notNull().references('conversations.id').onDelete('cascade'),
    )
    .addColumn('user_id', 'varchar(36)', (c) =>
      c.notNull().references('users.id').onDelete('cascade'),
    )
    .addColumn('banned_by', 'varchar(36)', (c) => c.notNull())
    .addColumn('banned_at', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('conversation_bans_pk', ['conversation_id', 'user_id'])
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('conversation_bans').execute();
}
