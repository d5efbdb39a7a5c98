import type { Kysely } from 'kysely';

// Frozen in time: never edit a migration that has shipped; add a new one.
//
// The device key directory: public keys only (X25519 identity, Ed25519 signing, signed prekey,
// one-time prekeys), and who verified whose identity. Private keys never reach the server.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('device_keys')
    .addColumn('device_id', 'varchar(36)', (c) =>
      c.primaryKey().references('devices.id').onDelete('cascade'),
    )
    .addColumn('user_id', 'varchar(36)', (c) =>
      c.notNull().references('users.id').onDelete('cascade'),
    )
    // base64 of the raw 32-byte public keys; the signature is base64 of 64 bytes.
    .addColumn('identity_key', 'varchar(64)', (c) => c.notNull())
    .addColumn('signing_key', 'varchar(64)', (c) => c.notNull())
    .addColumn('signed_prekey_id', 'bigint', (c) => c.notNull())
    .addColumn('signed_prekey', 'varchar(64)', (c) => c.notNull())
    .addColumn('signed_prekey_signature', 'varchar(100)', (c) => c.notNull())
    // Set when the one-time prekeys last ran low, so the device is told once per shortage.
    .addColumn('low_notified_at', 'bigint')
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('device_keys_user').on('device_keys').column('user_id').execute();

  await db.schema
    .createTable('one_time_prekeys')
    .addColumn('device_id', 'varchar(36)', (c) =>
      c.notNull().references('device_keys.device_id').onDelete('cascade'),
    )
    .addColumn('key_id', 'bigint', (c) => c.notNull())
    .addColumn('public_key', 'varchar(64)', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('one_time_prekeys_pk', ['device_id', 'key_id'])
    .execute();

  await db.schema
    .createTable('verifications')
    .addColumn('user_id', 'varchar(36)', (c) =>
      c.notNull().references('users.id').onDelete('cascade'),
    )
    .addColumn('target_user_id', 'varchar(36)', (c) =>
      c.notNull().references('users.id').onDelete('cascade'),
    )
    .addColumn('fingerprint', 'varchar(128)', (c) => c.notNull())
    .addColumn('method', 'varchar(16)', (c) => c.notNull())
    .addColumn('verified_at', 'bigint', (c) => c.notNull())
    // Set when the target's keys changed after verification: shown as "no longer verified".
    .addColumn('broken_at', 'bigint')
    .addPrimaryKeyConstraint('verifications_pk', ['user_id', 'target_user_id'])
    .execute();
  await db.schema
    .createIndex('verifications_target')
    .on('verifications')
    .column('target_user_id')
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const table of ['verifications', 'one_time_prekeys', 'device_keys'])
    await db.schema.dropTable(table).execute();
}
