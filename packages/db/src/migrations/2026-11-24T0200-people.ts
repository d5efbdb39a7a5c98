import type { Kysely } from 'kysely';

// Frozen in time: never edit a migration that has shipped; add a new one.
export async function up(db: Kysely<any>): Promise<void> {
  // One column per statement: SQLite's ALTER TABLE adds a single column at a time.
  const columns: [
    string,
    'varchar(1200)' | 'varchar(255)' | 'varchar(16)' | 'bigint',
    string | null,
  ][] = [
    ['bio', 'varchar(1200)', null],
    ['avatar_key', 'varchar(255)', null],
    ['privacy_find_by_phone', 'varchar(16)', 'everyone'],
    ['privacy_presence', 'varchar(16)', 'contacts'],
    ['privacy_requests', 'varchar(16)', 'everyone'],
    ['last_seen_at', 'bigint', null],
  ];
  for (const [name, type, fallback] of columns) {
    await db.schema
      .alterTable('users')
      .addColumn(name, type, (c) => (fallback === null ? c : c.notNull().defaultTo(fallback)))
      .execute();
  }

  await db.schema
    .createTable('contact_requests')
    .addColumn('id', 'varchar(36)', (c) => c.primaryKey())
    .addColumn('from_user_id', 'varchar(36)', (c) =>
      c.notNull().references('users.id').onDelete('cascade'),
    )
    .addColumn('to_user_id', 'varchar(36)', (c) =>
      c.notNull().references('users.id').onDelete('cascade'),
    )
    .addColumn('message', 'varchar(600)')
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addUniqueConstraint('contact_requests_pair', ['from_user_id', 'to_user_id'])
    .execute();
  await db.schema
    .createIndex('contact_requests_to')
    .on('contact_requests')
    .column('to_user_id')
    .execute();

  // Both directions are stored, so "my contacts" is one indexed range read.
  await db.schema
    .createTable('contacts')
    .addColumn('user_id', 'varchar(36)', (c) =>
      c.notNull().references('users.id').onDelete('cascade'),
    )
    .addColumn('contact_id', 'varchar(36)', (c) =>
      c.notNull().references('users.id').onDelete('cascade'),
    )
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('contacts_pk', ['user_id', 'contact_id'])
    .execute();

  await db.schema
    .createTable('blocks')
    .addColumn('blocker_id', 'varchar(36)', (c) =>
      c.notNull().references('users.id').onDelete('cascade'),
    )
    .addColumn('blocked_id', 'varchar(36)', (c) =>
      c.notNull().references('users.id').onDelete('cascade'),
    )
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('blocks_pk', ['blocker_id', 'blocked_id'])
    .execute();
  await db.schema.createIndex('blocks_blocked').on('blocks').column('blocked_id').execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const table of ['blocks', 'contacts', 'contact_requests'])
    await db.schema.dropTable(table).execute();
  for (const column of [
    'last_seen_at',
    'privacy_requests',
    'privacy_presence',
    'privacy_find_by_phone',
    'avatar_key',
    'bio',
  ]) {
    await db.schema.alterTable('users').dropColumn(column).execute();
  }
}
