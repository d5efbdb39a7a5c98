import { randomUUID } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { sql, type Kysely } from 'kysely';
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

    it('a missing key is added after the rows it would have cascaded away are deleted; again, nothing happens', async () => {
      const tag = randomUUID().slice(0, 8);
      const [parent, child] = [`fk_${tag}_parent`, `fk_${tag}_child`];
      try {
        await sql`CREATE TABLE ${sql.table(parent)} (id varchar(36) PRIMARY KEY)`.execute(db);
        // As MySQL 8.4 leaves an inline REFERENCES: the column, and no key.
        await sql`CREATE TABLE ${sql.table(child)} (
          id varchar(36) PRIMARY KEY, parent_id varchar(36) NOT NULL, note varchar(36) NULL)`.execute(
          db,
        );
        await sql`INSERT INTO ${sql.table(parent)} (id) VALUES ('p1'), ('p2')`.execute(db);
        await sql`INSERT INTO ${sql.table(child)} (id, parent_id) VALUES
          ('c1', 'p1'), ('c2', 'p2'), ('orphan', 'gone')`.execute(db);
        const key: ForeignKey = [child, 'parent_id', parent, 'id'];

        expect(await addMissingForeignKeys(db, [key])).toEqual([`${child}_parent_id_fk`]);

        const children = async () =>
          (
            await sql<{ id: string }>`SELECT id FROM ${sql.table(child)} ORDER BY id`.execute(db)
          ).rows.map((r) => r.id);
        expect(await children()).toEqual(['c1', 'c2']);
        expect(await keysOf(child)).toEqual([{ column: 'parent_id', parent, rule: 'CASCADE' }]);
        // It cascades now.
        await sql`DELETE FROM ${sql.table(parent)} WHERE id = 'p1'`.execute(db);
        expect(await children()).toEqual(['c2']);
        // Present (under any name): nothing to add.
        expect(await addMissingForeignKeys(db, [key])).toEqual([]);
        expect(await keysOf(child)).toHaveLength(1);
      } finally {
        await sql`DROP TABLE IF EXISTS ${sql.table(child)}`.execute(db);
        await sql`DROP TABLE IF EXISTS ${sql.table(parent)}`.execute(db);
      }
    });
  });
}
