import { sql, type Kysely } from 'kysely';

// Frozen in time: never edit a migration that has shipped; add a new one.
//
// One heartbeat time per side of an answered call instead of one shared by both. With a shared
// column, the side still beating kept the call fresh after the other side's device died, so the
// call stayed `accepted` (both people busy) for ever. Now the timeout job ends a call when either
// side goes quiet. Calls answered before this migration get their last beat on both sides (or
// the time they were answered, had none been recorded), so no live call looks stale at once.
//
// last_heartbeat_at is dropped: nothing indexes it, so SQLite (3.35+; better-sqlite3 bundles a
// newer one) drops it in place, as MySQL 8 does.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('calls').addColumn('caller_beat_at', 'bigint').execute();
  await db.schema.alterTable('calls').addColumn('callee_beat_at', 'bigint').execute();
  await db
    .updateTable('calls')
    .set({
      caller_beat_at: sql`coalesce(last_heartbeat_at, accepted_at, created_at)`,
      callee_beat_at: sql`coalesce(last_heartbeat_at, accepted_at, created_at)`,
    })
    .where('state', '=', 'accepted')
    .execute();
  await db.schema.alterTable('calls').dropColumn('last_heartbeat_at').execute();
}

/** Back to one shared column, holding the side that beat longest ago (what would time out first). */
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('calls').addColumn('last_heartbeat_at', 'bigint').execute();
  await db
    .updateTable('calls')
    .set({
      last_heartbeat_at: sql`case when caller_beat_at < callee_beat_at then caller_beat_at else callee_beat_at end`,
    })
    .execute();
  await db.schema.alterTable('calls').dropColumn('caller_beat_at').execute();
  await db.schema.alterTable('calls').dropColumn('callee_beat_at').execute();
}
