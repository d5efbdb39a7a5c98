import type { Kysely } from 'kysely';

// Frozen in time: never edit a migration that has shipped; add a new one.
//
// Call sessions: who called whom, how it went. SDP and ICE never touch the database (they are
// device-to-device ciphertext relayed live); only the invite's encrypted offer rides the stream.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('calls')
    .addColumn('id', 'varchar(36)', (c) => c.primaryKey())
    .addColumn('caller_id', 'varchar(36)', (c) =>
      c.notNull().references('users.id').onDelete('cascade'),
    )
    .addColumn('caller_device_id', 'varchar(36)', (c) => c.notNull())
    .addColumn('callee_id', 'varchar(36)', (c) =>
      c.notNull().references('users.id').onDelete('cascade'),
    )
    // The callee device that answered: the one peer for ICE and renegotiation.
    .addColumn('callee_device_id', 'varchar(36)')
    .addColumn('media', 'varchar(8)', (c) => c.notNull())
    // ringing | accepted | ended | missed | rejected | failed | busy
    .addColumn('state', 'varchar(12)', (c) => c.notNull())
    .addColumn('end_reason', 'varchar(32)')
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('accepted_at', 'bigint')
    .addColumn('ended_at', 'bigint')
    .addColumn('last_heartbeat_at', 'bigint')
    .execute();
  await db.schema
    .createIndex('calls_caller')
    .on('calls')
    .columns(['caller_id', 'created_at'])
    .execute();
  await db.schema
    .createIndex('calls_callee')
    .on('calls')
    .columns(['callee_id', 'created_at'])
    .execute();
  await db.schema.createIndex('calls_state').on('calls').columns(['state', 'created_at']).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('calls').execute();
}
