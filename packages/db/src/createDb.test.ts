import { mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import { describe, expect, it, vi } from 'vitest';
import { createDb, parseDbUrl } from './createDb';
import { migrateToLatest } from './migrate';
import { startWalCheckpointer } from './walCheckpointer';

describe('parseDbUrl', () => {
  it('defaults to the embedded SQLite file', () => {
    expect(parseDbUrl(undefined)).toEqual({ dialect: 'sqlite', path: './data/mvp.db' });
  });
  it('reads sqlite paths and :memory:', () => {
    expect(parseDbUrl('sqlite::memory:')).toEqual({ dialect: 'sqlite', path: ':memory:' });
    expect(parseDbUrl('sqlite:./x/y.db')).toEqual({ dialect: 'sqlite', path: './x/y.db' });
    expect(parseDbUrl('sqlite:///tmp/z.db')).toEqual({ dialect: 'sqlite', path: '/tmp/z.db' });
  });
  it('reads mysql URLs and refuses anything else', () => {
    expect(parseDbUrl('mysql://u:p@h:3306/d').dialect).toBe('mysql');
    expect(() => parseDbUrl('postgres://h/d')).toThrow(/DATABASE_URL/);
    expect(() => parseDbUrl('sqlite:')).toThrow(/DATABASE_URL/);
  });
});

// A file, not :memory:, so that two connections see the same database.
const sqliteFile = () => `sqlite:${join(mkdtempSync(join(tmpdir(), 'mvp-db-')), 'test.db')}`;
const backends = [{ name: 'sqlite', url: sqliteFile }];
if (process.env.MVP_TEST_DATABASE_URL) {
  const url = process.env.MVP_TEST_DATABASE_URL;
  backends.push({ name: 'mysql', url: () => url });
}

describe.each(backends)('createDb + migrations on $name', ({ url }) => {
  it('migrates, records an install id, and a second run applies nothing', async () => {
    const db = createDb(url());
    try {
      await migrateToLatest(db);
      const again = await migrateToLatest(db);
      expect(again.applied).toEqual([]);
      const row = await db
        .selectFrom('app_meta')
        .selectAll()
        .where('key', '=', 'install_id')
        .executeTakeFirst();
      expect(row?.value).toMatch(/^[0-9a-f-]{36}$/);
    } finally {
      await db.destroy();
    }
  });

  it('stores and returns utf8mb4 text (emoji) unchanged', async () => {
    const db = createDb(url());
    try {
      await migrateToLatest(db);
      const key = `emoji-${Math.random().toString(36).slice(2)}`;
      await db
        .insertInto('app_meta')
        .values({ key, value: 'hi 👋🏽 ñ 中文', updated_at: Date.now() })
        .execute();
      const row = await db
        .selectFrom('app_meta')
        .select('value')
        .where('key', '=', key)
        .executeTakeFirstOrThrow();
      expect(row.value).toBe('hi 👋🏽 ñ 中文');
      await db.deleteFrom('app_meta').where('key', '=', key).execute();
    } finally {
      await db.destroy();
    }
  });
});

describe('embedded SQLite', () => {
  it('turns on WAL and foreign keys, and keeps temporary storage in memory', async () => {
    const db = createDb(sqliteFile());
    try {
      const journal = await sql<{ journal_mode: string }>`pragma journal_mode`.execute(db);
      const fk = await sql<{ foreign_keys: number }>`pragma foreign_keys`.execute(db);
      expect(journal.rows[0]?.journal_mode).toBe('wal');
      expect(fk.rows[0]?.foreign_keys).toBe(1);
      const temp = await sql<{ temp_store: number }>`pragma temp_store`.execute(db);
      expect(temp.rows[0]?.temp_store).toBe(2); // MEMORY
    } finally {
      await db.destroy();
    }
  });
});

describe('WAL checkpoints off the serving thread', () => {
  it('a worker copies the log into the database file; the serving connection never does', async () => {
    const url = sqliteFile();
    const path = url.slice('sqlite:'.length);
    const db = createDb(url);
    try {
      const auto = await sql<{ wal_autocheckpoint: number }>`pragma wal_autocheckpoint`.execute(db);
      expect(auto.rows[0]?.wal_autocheckpoint).toBe(0);
      await sql`create table t (b blob not null)`.execute(db);
      const before = statSync(path).size;
      // ~2 MB in 64 commits: fewer log pages than SQLite's own in-line threshold (1000), so
      // only the worker moves them into the file.
      for (let i = 0; i < 64; i++) {
        await sql`insert into t (b) values (${Buffer.alloc(32_768, i)})`.execute(db);
      }
      await vi.waitFor(() => expect(statSync(path).size).toBeGreaterThan(before + 2_000_000), {
        timeout: 5_000,
      });
    } finally {
      await db.destroy();
    }
  });

  it('reports a worker that cannot run, once, and not one that was stopped', async () => {
    const missing = join(tmpdir(), 'no-such-dir', 'x', 'test.db');
    // Another worker started and failed afterwards: by then the earlier ones have had their say.
    const later = () => new Promise((resolve) => startWalCheckpointer(missing, resolve));

    const broken = vi.fn();
    startWalCheckpointer(missing, broken);
    await vi.waitFor(() => expect(broken).toHaveBeenCalled());
    await later();
    expect(broken).toHaveBeenCalledOnce();
    expect((broken.mock.calls[0]![0] as Error).message).toMatch(/directory|open/i);

    const stopped = vi.fn();
    startWalCheckpointer(sqliteFile().slice('sqlite:'.length), stopped).stop();
    await later();
    expect(stopped).not.toHaveBeenCalled();
  });
});

// Kysely's migration lock is GET_LOCK on MySQL; on SQLite it is a no-op because one process owns
// the embedded file, so only MySQL runs this.
if (process.env.MVP_TEST_DATABASE_URL) {
  describe('MySQL migration lock', () => {
    it('concurrent migrators (two instances starting at once) both succeed under the lock', async () => {
      const target = process.env.MVP_TEST_DATABASE_URL!;
      const [a, b] = [createDb(target), createDb(target)];
      try {
        const results = await Promise.all([migrateToLatest(a), migrateToLatest(b)]);
        expect(results.every((r) => Array.isArray(r.applied))).toBe(true);
        const count = await a
          .selectFrom('app_meta')
          .select(sql<number>`count(*)`.as('n'))
          .where('key', '=', 'install_id')
          .executeTakeFirstOrThrow();
        expect(Number(count.n)).toBe(1);
      } finally {
        await Promise.all([a.destroy(), b.destroy()]);
      }
    });
  });
}
