import { MysqlAdapter, type Kysely } from 'kysely';

// Frozen in time: never edit a migration that has shipped; add a new one.
//
// Each refresh token names the token it was rotated from (by hash, as tokens are stored). A used
// token replayed within the reuse grace mints a sibling of the token its first use minted; a
// client retrying a lost answer, or two tabs sharing one store, go on with one sibling only, so a
// second sibling in use means a second holder, and the family is revoked. Tokens issued before
// this have no parent and start their chain afresh.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('refresh_tokens').addColumn('parent_hash', 'varchar(64)').execute();
  await db.schema
    .createIndex('refresh_tokens_parent')
    .on('refresh_tokens')
    .column('parent_hash')
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  // SQLite's DROP INDEX names no table; MySQL's must.
  const drop = db.schema.dropIndex('refresh_tokens_parent');
  await (
    db.getExecutor().adapter instanceof MysqlAdapter ? drop.on('refresh_tokens') : drop
  ).execute();
  await db.schema.alterTable('refresh_tokens').dropColumn('parent_hash').execute();
}
