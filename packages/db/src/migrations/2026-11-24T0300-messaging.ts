import { MysqlAdapter, sql, type Kysely } from 'kysely';

// Frozen in time: never edit a migration that has shipped; add a new one.
//
// The per-user event stream (sync), conversations, members and messages. Payloads are opaque
// bytes: the server orders and routes ciphertext it cannot read.
export async function up(db: Kysely<any>): Promise<void> {
  const mysql = db.getExecutor().adapter instanceof MysqlAdapter;
  // MySQL's BLOB and TEXT stop at 64 KiB; ciphertexts may be larger once configured so.
  const bytes = mysql ? sql`mediumblob` : 'blob';
  const json = mysql ? sql`mediumtext` : 'text';

  // One ordered stream per user. `last_seq` is bumped inside the transaction that writes the
  // event (the row lock orders concurrent writers, so seq order is commit order); `first_seq`
  // is the oldest event still stored: a cursor before it gets a `resync` event.
  await db.schema
    .createTable('user_streams')
    .addColumn('user_id', 'varchar(36)', (c) =>
      c.primaryKey().references('users.id').onDelete('cascade'),
    )
    .addColumn('last_seq', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('first_seq', 'bigint', (c) => c.notNull().defaultTo(1))
    .execute();
  await db
    .insertInto('user_streams')
    .columns(['user_id'])
    .expression(db.selectFrom('users').select('id'))
    .execute();

  await db.schema
    .createTable('user_events')
    .addColumn('user_id', 'varchar(36)', (c) =>
      c.notNull().references('users.id').onDelete('cascade'),
    )
    .addColumn('seq', 'bigint', (c) => c.notNull())
    // Set for device-to-device envelopes: only that device reads the row, and it stays until
    // that device acknowledges it (or it expires). Null: every device of the user.
    .addColumn('device_id', 'varchar(36)')
    .addColumn('type', 'varchar(48)', (c) => c.notNull())
    // Small JSON; message events hold a reference and are filled in from `messages` on read.
    .addColumn('payload', json, (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('user_events_pk', ['user_id', 'seq'])
    .execute();
  await db.schema
    .createIndex('user_events_created')
    .on('user_events')
    .column('created_at')
    .execute();
  await db.schema
    .createIndex('user_events_device')
    .on('user_events')
    .columns(['device_id', 'seq'])
    .execute();

  await db.schema
    .createTable('conversations')
    .addColumn('id', 'varchar(36)', (c) => c.primaryKey())
    .addColumn('kind', 'varchar(16)', (c) => c.notNull())
    .addColumn('title', 'varchar(512)')
    .addColumn('description', 'varchar(2048)')
    .addColumn('avatar_key', 'varchar(255)')
    // `<smaller user id>:<larger user id>` for direct conversations: one per pair, by constraint.
    .addColumn('direct_key', 'varchar(80)', (c) => c.unique())
    .addColumn('last_seq', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('member_count', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('created_by', 'varchar(36)', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .execute();

  await db.schema
    .createTable('conversation_members')
    .addColumn('conversation_id', 'varchar(36)', (c) =>
      c.notNull().references('conversations.id').onDelete('cascade'),
    )
    .addColumn('user_id', 'varchar(36)', (c) =>
      c.notNull().references('users.id').onDelete('cascade'),
    )
    .addColumn('role', 'varchar(16)', (c) => c.notNull())
    .addColumn('joined_at', 'bigint', (c) => c.notNull())
    // Messages at or below `joined_seq` predate membership and stay hidden from this member.
    .addColumn('joined_seq', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('delivered_seq', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('read_seq', 'bigint', (c) => c.notNull().defaultTo(0))
    .addPrimaryKeyConstraint('conversation_members_pk', ['conversation_id', 'user_id'])
    .execute();
  await db.schema
    .createIndex('conversation_members_user')
    .on('conversation_members')
    .column('user_id')
    .execute();

  await db.schema
    .createTable('messages')
    .addColumn('conversation_id', 'varchar(36)', (c) =>
      c.notNull().references('conversations.id').onDelete('cascade'),
    )
    .addColumn('seq', 'bigint', (c) => c.notNull())
    .addColumn('id', 'varchar(36)', (c) => c.notNull().unique())
    // No foreign key: a sender who deletes their account leaves their messages in others' chats.
    .addColumn('sender_id', 'varchar(36)', (c) => c.notNull())
    .addColumn('sender_device_id', 'varchar(36)', (c) => c.notNull())
    .addColumn('client_message_id', 'varchar(64)', (c) => c.notNull())
    .addColumn('content_type', 'varchar(64)', (c) => c.notNull())
    .addColumn('ciphertext', bytes)
    .addColumn('reply_to_seq', 'bigint')
    .addColumn('forwarded', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('edited_at', 'bigint')
    .addColumn('deleted_at', 'bigint')
    .addPrimaryKeyConstraint('messages_pk', ['conversation_id', 'seq'])
    // A resend with the same client message id finds the first result instead of a duplicate.
    .addUniqueConstraint('messages_client_id', [
      'conversation_id',
      'sender_id',
      'client_message_id',
    ])
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const table of [
    'messages',
    'conversation_members',
    'conversations',
    'user_events',
    'user_streams',
  ]) {
    await db.schema.dropTable(table).execute();
  }
}
