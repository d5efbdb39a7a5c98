import { MysqlAdapter, sql, type Kysely } from 'kysely';

// Frozen in time: never edit a migration that has shipped; add a new one.
//
// Every foreign key so far was declared inline, on its column (Kysely's `.references()`).
// MariaDB and SQLite create those; MySQL before 9.0 parses them and creates nothing, silently.
// On MySQL 8.4 (docker-compose's image) the schema had no foreign key at all, so nothing
// cascaded: a deleted account left its devices, sessions, contacts, streams, keys and calls
// behind, a deleted conversation its messages. Here each missing key is added as a table
// constraint (which every MySQL honours), after deleting the rows a cascade would have taken.
// On MariaDB every key exists already and nothing happens; SQLite is not touched. Later
// migrations declare foreign keys with `addForeignKeyConstraint`, never inline
// (foreignKeys.test.ts holds them to it).

/** [table, column, referenced table, referenced column]; every one ON DELETE CASCADE. */
export type ForeignKey = readonly [string, string, string, string];

/** Every foreign key of the schema, parents before children (orphans go top down). */
export const FOREIGN_KEYS: readonly ForeignKey[] = [
  ['devices', 'user_id', 'users', 'id'],
  ['sessions', 'user_id', 'users', 'id'],
  ['sessions', 'device_id', 'devices', 'id'],
  ['refresh_tokens', 'session_id', 'sessions', 'id'],
  ['contact_requests', 'from_user_id', 'users', 'id'],
  ['contact_requests', 'to_user_id', 'users', 'id'],
  ['contacts', 'user_id', 'users', 'id'],
  ['contacts', 'contact_id', 'users', 'id'],
  ['blocks', 'blocker_id', 'users', 'id'],
  ['blocks', 'blocked_id', 'users', 'id'],
  ['user_streams', 'user_id', 'users', 'id'],
  ['user_events', 'user_id', 'users', 'id'],
  ['conversation_members', 'conversation_id', 'conversations', 'id'],
  ['conversation_members', 'user_id', 'users', 'id'],
  ['messages', 'conversation_id', 'conversations', 'id'],
  ['message_hidden', 'conversation_id', 'conversations', 'id'],
  ['message_hidden', 'user_id', 'users', 'id'],
  ['message_edits', 'conversation_id', 'conversations', 'id'],
  ['reactions', 'conversation_id', 'conversations', 'id'],
  ['reactions', 'user_id', 'users', 'id'],
  ['pins', 'conversation_id', 'conversations', 'id'],
  ['invites', 'conversation_id', 'conversations', 'id'],
  ['conversation_bans', 'conversation_id', 'conversations', 'id'],
  ['conversation_bans', 'user_id', 'users', 'id'],
  ['device_keys', 'user_id', 'users', 'id'],
  ['device_keys', 'device_id', 'devices', 'id'],
  ['one_time_prekeys', 'device_id', 'device_keys', 'device_id'],
  ['verifications', 'user_id', 'users', 'id'],
  ['verifications', 'target_user_id', 'users', 'id'],
  ['calls', 'caller_id', 'users', 'id'],
  ['calls', 'callee_id', 'users', 'id'],
];

const constraintOf = ([table, column]: ForeignKey) => `${table}_${column}_fk`;

/**
 * Adds each key of `keys` that MySQL does not have (by its columns, whatever its name), after
 * deleting the child rows whose parent is gone. A table's missing keys go in one ALTER: with
 * foreign key checks on, MySQL adds a key by copying the table (writes to it wait), so once
 * per table, not per key. Each table is its own step, so a run cut short is finished by the
 * next. The ALTER validates the rows (a parent deleted meanwhile fails it; the next start tries
 * again).
 */
export async function addMissingForeignKeys(
  db: Kysely<any>,
  keys: readonly ForeignKey[],
): Promise<string[]> {
  const missing = new Map<string, ForeignKey[]>();
  for (const key of keys) {
    const [table, column, parent, parentColumn] = key;
    const { rows } = await sql<{ n: number }>`
      SELECT COUNT(*) AS n FROM information_schema.key_column_usage
      WHERE table_schema = DATABASE() AND table_name = ${table} AND column_name = ${column}
        AND referenced_table_name = ${parent} AND referenced_column_name = ${parentColumn}`.execute(
      db,
    );
    if (Number(rows[0]!.n) === 0) missing.set(table, [...(missing.get(table) ?? []), key]);
  }
  // Tables in the order of their first key: parents' orphans go before their children's.
  for (const [table, tableKeys] of missing) {
    for (const [, column, parent, parentColumn] of tableKeys)
      await sql`
        DELETE child FROM ${sql.table(table)} AS child
        LEFT JOIN ${sql.table(parent)} AS parent
          ON parent.${sql.ref(parentColumn)} = child.${sql.ref(column)}
        WHERE child.${sql.ref(column)} IS NOT NULL AND parent.${sql.ref(parentColumn)} IS NULL`.execute(
        db,
      );
    const constraints = tableKeys.map(
      (key) =>
        sql`ADD CONSTRAINT ${sql.ref(constraintOf(key))} FOREIGN KEY (${sql.ref(key[1])})
          REFERENCES ${sql.table(key[2])} (${sql.ref(key[3])}) ON DELETE CASCADE`,
    );
    await sql`ALTER TABLE ${sql.table(table)} ${sql.join(constraints)}`.execute(db);
  }
  return [...missing.values()].flat().map(constraintOf);
}

const mysqlOf = (db: Kysely<any>) => db.getExecutor().adapter instanceof MysqlAdapter;

export async function up(db: Kysely<any>): Promise<void> {
  if (mysqlOf(db)) await addMissingForeignKeys(db, FOREIGN_KEYS);
}

export async function down(db: Kysely<any>): Promise<void> {
  if (!mysqlOf(db)) return;
  // Only the constraints this added (by their names); MariaDB's own inline ones stay.
  for (const key of [...FOREIGN_KEYS].reverse()) {
    const { rows } = await sql<{ n: number }>`
      SELECT COUNT(*) AS n FROM information_schema.table_constraints
      WHERE table_schema = DATABASE() AND table_name = ${key[0]}
        AND constraint_name = ${constraintOf(key)}`.execute(db);
    if (Number(rows[0]!.n) > 0)
      await sql`ALTER TABLE ${sql.table(key[0])} DROP FOREIGN KEY ${sql.ref(constraintOf(key))}`.execute(
        db,
      );
  }
}
