import { MysqlAdapter, sql, type Kysely } from 'kysely';

/**
 * The calls table's indexes, fitted to the queries it has since 2026-11-26T0300:
 * - `calls_caller` and `calls_callee` (side, created_at), of the first calls migration, are read
 *   by nothing (history pages by (side, id), live calls by (side, state)); each was one more
 *   b-tree that every call's insert and state change wrote.
 * - The callee's (side, state) index takes `created_at` too: a cold start's ringing calls
 *   (`ringingCallsOf`) read the callee's own, in order. With two columns SQLite chose
 *   `calls_state` instead, everyone's ringing calls. The live-call lookup reads its prefix.
 * On MySQL the foreign keys on `caller_id` and `callee_id` keep an index each to lead with them
 * (`calls_caller_id`, `calls_callee_id`).
 */
const dropped = [
  { name: 'calls_caller', columns: ['caller_id', 'created_at'] },
  { name: 'calls_callee', columns: ['callee_id', 'created_at'] },
  { name: 'calls_callee_state', columns: ['callee_id', 'state'] },
];
const added = [{ name: 'calls_callee_state_at', columns: ['callee_id', 'state', 'created_at'] }];

const mysqlOf = (db: Kysely<any>) => db.getExecutor().adapter instanceof MysqlAdapter;

async function change(db: Kysely<any>, drop: typeof dropped, add: typeof added): Promise<void> {
  if (mysqlOf(db)) {
    // One ALTER: where foreign key checks make MySQL rebuild the table, it does so once.
    const parts = [
      ...add.map(
        ({ name, columns }) =>
          sql`ADD INDEX ${sql.ref(name)} (${sql.join(columns.map((c) => sql.ref(c)))})`,
      ),
      ...drop.map(({ name }) => sql`DROP INDEX ${sql.ref(name)}`),
    ];
    await sql`ALTER TABLE calls ${sql.join(parts)}`.execute(db);
    return;
  }
  for (const { name, columns } of add)
    await db.schema.createIndex(name).on('calls').columns(columns).execute();
  for (const { name } of drop) await db.schema.dropIndex(name).execute();
}

export async function up(db: Kysely<any>): Promise<void> {
  await change(db, dropped, added);
}

export async function down(db: Kysely<any>): Promise<void> {
  await change(db, added, dropped);
}
