import type { Kysely } from 'kysely';

// Frozen in time: never edit a migration that has shipped; add a new one.
//
// A restricted (read-only) member who leaves would come back by the group's link as a plain
// member, lifting the restriction with two taps. Their leaving now keeps a row here with
// `rejoin_as = 'restricted'`: an invite lets them back in, restricted. Rows of members an admin
// removed keep `rejoin_as` null: no rejoining by invite at all.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('conversation_bans').addColumn('rejoin_as', 'varchar(16)').execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('conversation_bans').dropColumn('rejoin_as').execute();
}
