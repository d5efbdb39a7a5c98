import type { Kysely } from 'kysely';

// Frozen in time: never edit a migration that has shipped; add a new one.
//
// What conversations and messages grow beyond send-and-read: slow mode, disappearing messages,
// edits and deletions, reactions, pins, invites, and the read-receipts privacy setting.
export async function up(db: Kysely<any>): Promise<void> {
  // One column per statement: SQLite's ALTER TABLE adds a single column at a time.
  const add = async (table: string, name: string, type: 'bigint' | 'integer', fallback?: number) =>
    db.schema
      .alterTable(table)
      .addColumn(name, type, (c) => (fallback === undefined ? c : c.notNull().defaultTo(fallback)))
      .execute();
  await add('conversations', 'slow_mode_seconds', 'integer', 0);
  await add('conversations', 'disappear_seconds', 'integer', 0);
  await add('conversation_members', 'last_post_at', 'bigint');
  await add('messages', 'expires_at', 'bigint');
  // 1: my read positions reach the other members; 0: they see only "delivered".
  await add('users', 'privacy_read_receipts', 'integer', 1);

  await db.schema.createIndex('messages_expires').on('messages').column('expires_at').execute();

  // "Delete for me": the message stays for everyone else.
  await db.schema
    .createTable('message_hidden')
    .addColumn('user_id', 'varchar(36)', (c) =>
      c.notNull().references('users.id').onDelete('cascade'),
    )
    .addColumn('conversation_id', 'varchar(36)', (c) =>
      c.notNull().references('conversations.id').onDelete('cascade'),
    )
    .addColumn('seq', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('message_hidden_pk', ['user_id', 'conversation_id', 'seq'])
    .execute();

  await db.schema
    .createTable('reactions')
    .addColumn('conversation_id', 'varchar(36)', (c) =>
      c.notNull().references('conversations.id').onDelete('cascade'),
    )
    .addColumn('seq', 'bigint', (c) => c.notNull())
    .addColumn('user_id', 'varchar(36)', (c) =>
      c.notNull().references('users.id').onDelete('cascade'),
    )
    .addColumn('emoji', 'varchar(32)', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('reactions_pk', ['conversation_id', 'seq', 'user_id', 'emoji'])
    .execute();

  await db.schema
    .createTable('pins')
    .addColumn('conversation_id', 'varchar(36)', (c) =>
      c.notNull().references('conversations.id').onDelete('cascade'),
    )
    .addColumn('seq', 'bigint', (c) => c.notNull())
    .addColumn('pinned_by', 'varchar(36)', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('pins_pk', ['conversation_id', 'seq'])
    .execute();

  await db.schema
    .createTable('invites')
    // Random, unguessable; the code is the capability.
    .addColumn('code', 'varchar(32)', (c) => c.primaryKey())
    .addColumn('conversation_id', 'varchar(36)', (c) =>
      c.notNull().references('conversations.id').onDelete('cascade'),
    )
    .addColumn('created_by', 'varchar(36)', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('expires_at', 'bigint')
    .addColumn('max_uses', 'integer')
    .addColumn('uses', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('revoked_at', 'bigint')
    .execute();
  await db.schema
    .createIndex('invites_conversation')
    .on('invites')
    .column('conversation_id')
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const table of ['invites', 'pins', 'reactions', 'message_hidden'])
    await db.schema.dropTable(table).execute();
  await db.schema.dropIndex('messages_expires').on('messages').execute();
  for (const [table, column] of [
    ['users', 'privacy_read_receipts'],
    ['messages', 'expires_at'],
    ['conversation_members', 'last_post_at'],
    ['conversations', 'disappear_seconds'],
    ['conversations', 'slow_mode_seconds'],
  ] as const)
    await db.schema.alterTable(table).dropColumn(column).execute();
}
