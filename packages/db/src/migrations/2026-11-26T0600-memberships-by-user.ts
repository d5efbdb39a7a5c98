import { MysqlAdapter, sql, type Kysely } from 'kysely';

/**
 * A user's memberships in conversation id order: the snapshot's conversations come in pages by
 * id (`listMineAfter`). On SQLite the index on `user_id` alone holds no conversation id, so a
 * page sorted that user's every membership, or walked the primary key (conversation_id, user_id)
 * through everyone's. InnoDB appends the primary key to the old index (the same order), and its
 * foreign key on `user_id` is served by the new one's first column. Every other reader of the
 * old index reads the new one's prefix.
 */
const byUser = { name: 'conversation_members_user', columns: ['user_id'] };
const byUserThenConversation = {
  name: 'conversation_members_user_conversation',
  columns: ['user_id', 'conversation_id'],
};

const mysqlOf = (db: Kysely<any>) => db.getExecutor().adapter instanceof MysqlAdapter;

async function change(db: Kysely<any>, drop: typeof byUser, add: typeof byUser): Promise<void> {
  if (mysqlOf(db)) {
    // One ALTER, the new index first: the foreign key on user_id always has one to lead with.
    await sql`ALTER TABLE conversation_members ADD INDEX ${sql.ref(add.name)} (${sql.join(
      add.columns.map((c) => sql.ref(c)),
    )}), DROP INDEX ${sql.ref(drop.name)}`.execute(db);
    return;
  }
  await db.schema.createIndex(add.name).on('conversation_members').columns(add.columns).execute();
  await db.schema.dropIndex(drop.name).execute();
}

export async function up(db: Kysely<any>): Promise<void> {
  await change(db, byUser, byUserThenConversation);
}

export async function down(db: Kysely<any>): Promise<void> {
  await change(db, byUserThenConversation, byUser);
}
