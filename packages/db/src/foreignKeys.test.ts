import { randomUUID } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { sql, type Kysely, type KyselyPlugin } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDb } from './createDb';
import { migrateToLatest } from './migrate';
import type { DB } from './schema';
import {
  addMissingForeignKeys,
  FOREIGN_KEYS,
  type ForeignKey,
} from './migrations/2026-11-26T0400-table-foreign-keys';

const MIGRATIONS = join(import.meta.dirname, 'migrations');

describe('foreign keys', () => {
  it('the MySQL migration lists every foreign key of the schema (as SQLite has them)', async () => {
    const db = createDb('sqlite::memory:');
    try {
      await migrateToLatest(db);
      const tables = await sql<{ name: string }>`
        select name from sqlite_master where type = 'table' and name not like 'sqlite_%'`.execute(
        db,
      );
      const keys: string[] = [];
      for (const { name } of tables.rows) {
        const list = await sql<{ from: string; table: string; to: string; on_delete: string }>`
          select * from pragma_foreign_key_list(${name})`.execute(db);
        for (const fk of list.rows) {
          keys.push(`${name}.${fk.from} -> ${fk.table}.${fk.to}`);
          expect(fk.on_delete).toBe('CASCADE');
        }
      }
      expect(keys.sort()).toEqual(
        FOREIGN_KEYS.map(([t, c, p, pc]) => `${t}.${c} -> ${p}.${pc}`).sort(),
      );
    } finally {
      await db.destroy();
    }
  });

  it('no migration from it on declares a foreign key inline (MySQL 8 ignores those)', () => {
    const later = readdirSync(MIGRATIONS).filter(
      (file) => file >= '2026-11-26T0400' && file.endsWith('.ts') && file !== 'index.ts',
    );
    for (const file of later)
      expect(readFileSync(join(MIGRATIONS, file), 'utf8'), file).not.toMatch(/\.references\(['"`]/);
  });
});

// MySQL only: the migration's work is there. MariaDB (this suite's MySQL) creates inline keys
// itself, so MySQL 8.4's schema is staged on scratch tables: a parent and a child without a key.
if (process.env.MVP_TEST_DATABASE_URL) {
  const url = process.env.MVP_TEST_DATABASE_URL;

  describe('foreign keys on MySQL', () => {
    let db: Kysely<DB>;
    beforeAll(async () => {
      db = createDb(url);
      await migrateToLatest(db);
    });
    afterAll(() => db.destroy());

    const keysOf = async (table: string) =>
      (
        await sql<{ column: string; parent: string; rule: string }>`
          SELECT k.column_name AS \`column\`, k.referenced_table_name AS parent,
            r.delete_rule AS rule
          FROM information_schema.key_column_usage k
          JOIN information_schema.referential_constraints r
            ON r.constraint_schema = k.table_schema AND r.constraint_name = k.constraint_name
          WHERE k.table_schema = DATABASE() AND k.table_name = ${table}
            AND k.referenced_table_name IS NOT NULL`.execute(db)
      ).rows;

    it('every key of the schema exists and cascades', async () => {
      for (const [table, column, parent] of FOREIGN_KEYS)
        expect(await keysOf(table), `${table}.${column}`).toContainEqual({
          column,
          parent,
          rule: 'CASCADE',
        });
    });

    it("a table's missing keys are added in one go after the rows they would have cascaded away are deleted; again, nothing happens", async () => {
      const tag = randomUUID().slice(0, 8);
      const [first, second, child] = [`fk_${tag}_a`, `fk_${tag}_b`, `fk_${tag}_child`];
      try {
        for (const parent of [first, second]) {
          await sql`CREATE TABLE ${sql.table(parent)} (id varchar(36) PRIMARY KEY)`.execute(db);
          await sql`INSERT INTO ${sql.table(parent)} (id) VALUES ('p1'), ('p2')`.execute(db);
        }
        // As MySQL 8.4 leaves an inline REFERENCES: the columns, and no key.
        await sql`CREATE TABLE ${sql.table(child)} (
          id varchar(36) PRIMARY KEY, a_id varchar(36) NOT NULL, b_id varchar(36) NULL)`.execute(
          db,
        );
        await sql`INSERT INTO ${sql.table(child)} (id, a_id, b_id) VALUES
          ('c1', 'p1', 'p1'), ('c2', 'p2', NULL), ('no-a', 'gone', 'p1'), ('no-b', 'p1', 'gone')`.execute(
          db,
        );
        const keys: ForeignKey[] = [
          [child, 'a_id', first, 'id'],
          [child, 'b_id', second, 'id'],
        ];

        // Each ALTER copies the table on MySQL: one for the two keys.
        const alters: string[] = [];
        const watching: KyselyPlugin = {
          transformQuery(args) {
            const text = args.node.kind === 'RawNode' ? args.node.sqlFragments.join('?') : '';
            if (/^\s*ALTER TABLE/.test(text)) alters.push(text);
            return args.node;
          },
          transformResult: async (args) => args.result,
        };
        expect(await addMissingForeignKeys(db.withPlugin(watching), keys)).toEqual([
          `${child}_a_id_fk`,
          `${child}_b_id_fk`,
        ]);
        expect(alters).toHaveLength(1);

        const children = async () =>
          (
            await sql<{ id: string }>`SELECT id FROM ${sql.table(child)} ORDER BY id`.execute(db)
          ).rows.map((r) => r.id);
        expect(await children()).toEqual(['c1', 'c2']);
        expect((await keysOf(child)).sort((x, y) => x.column.localeCompare(y.column))).toEqual([
          { column: 'a_id', parent: first, rule: 'CASCADE' },
          { column: 'b_id', parent: second, rule: 'CASCADE' },
        ]);
        // They cascade now.
        await sql`DELETE FROM ${sql.table(second)} WHERE id = 'p1'`.execute(db);
        expect(await children()).toEqual(['c2']);
        // Present (under any name): nothing to add.
        expect(await addMissingForeignKeys(db, keys)).toEqual([]);
        expect(await keysOf(child)).toHaveLength(2);
      } finally {
        for (const table of [child, first, second])
          await sql`DROP TABLE IF EXISTS ${sql.table(table)}`.execute(db);
      }
    });
  });
}
