import { randomUUID } from 'node:crypto';
import { mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql, type Kysely } from 'kysely';
import { describe, expect, it, vi } from 'vitest';
import { createDb, parseDbUrl } from './createDb';
import { migrateToLatest } from './migrate';
import type { DB } from './schema';
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

// The send's stored procedure exists on MySQL only (SQLite runs the same transaction in
// process); the server's messaging tests cover it through the API, this checks what they cannot
// reach: the rows each member's membership gets, a conversation that vanished mid-send, and a
// send decided on a membership that changed before its write.
/** A row of the procedure's answer: the message's seq, a member and their new stream seq. */
type StreamSeq = { seq: number; user_id: string; last_seq: number };

if (process.env.MVP_TEST_DATABASE_URL) {
  const url = process.env.MVP_TEST_DATABASE_URL;

  /** Every byte value: the ciphertext must come back as it went, none read as text. */
  const ciphertext = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
  // As the send calls it: one statement as text (the ciphertext a hex literal).
  const call = (
    db: Kysely<DB>,
    conversationId: string,
    senderId: string,
    now: number,
    role = 'member',
    postedBefore = Number.MAX_SAFE_INTEGER,
  ) =>
    sql<StreamSeq[]>`CALL mvp_send_message(
      ${conversationId}, ${randomUUID()}, ${senderId}, ${randomUUID()}, ${randomUUID()},
      ${'text/plain'}, ${ciphertext}, ${null}, ${0}, ${now}, ${null}, ${role},
      ${postedBefore})`.execute(db);

  describe('mvp_send_message (MySQL)', () => {
    it("appends to every member's stream and moves only the sender's read position; a vanished conversation, a changed membership or a slow-mode slot taken writes nothing", async () => {
      const db = createDb(url);
      const [alice, bob] = [randomUUID(), randomUUID()].sort();
      const conversationId = randomUUID();
      const now = Date.now();
      try {
        await migrateToLatest(db);
        for (const id of [alice!, bob!]) {
          await db
            .insertInto('users')
            .values({
              id,
              unique_id: id.slice(0, 8),
              username: null,
              phone_ciphertext: null,
              phone_index: null,
              display_name_ciphertext: 'x',
              password_hash: 'x',
              require_otp_login: 0,
              created_at: now,
              updated_at: now,
              last_active_at: now,
              bio: null,
              avatar_key: null,
              last_seen_at: null,
            })
            .execute();
        }
        await db
          .insertInto('user_streams')
          .values([
            { user_id: alice!, last_seq: 5 },
            { user_id: bob!, last_seq: 0 },
          ])
          .execute();
        await db
          .insertInto('conversations')
          .values({
            id: conversationId,
            kind: 'direct',
            title: null,
            description: null,
            avatar_key: null,
            direct_key: `${alice}:${bob}`,
            last_seq: 3,
            created_by: alice!,
            created_at: now,
            updated_at: now,
          })
          .execute();
        await db
          .insertInto('conversation_members')
          .values(
            [alice!, bob!].map((user_id) => ({
              conversation_id: conversationId,
              user_id,
              role: 'member',
              joined_at: now,
              last_post_at: null,
            })),
          )
          .execute();

        const answer = await call(db, conversationId, alice!, now + 1);
        // A CALL answers its result set, then the procedure's own status.
        const streams = answer.rows[0]!;
        expect(
          streams
            .map((s) => ({ seq: Number(s.seq), user: s.user_id, last: Number(s.last_seq) }))
            .sort((a, b) => a.user.localeCompare(b.user)),
        ).toEqual([
          { seq: 4, user: alice, last: 6 },
          { seq: 4, user: bob, last: 1 },
        ]);
        const members = await db
          .selectFrom('conversation_members')
          .select(['user_id', 'delivered_seq', 'read_seq', 'last_post_at'])
          .where('conversation_id', '=', conversationId)
          .orderBy('user_id')
          .execute();
        expect(
          members.map((m) => [m.delivered_seq, m.read_seq, m.last_post_at].map(Number)),
        ).toEqual([
          [4, 4, now + 1],
          [0, 0, 0], // bob's row as it was (last_post_at null)
        ]);
        const events = await db
          .selectFrom('user_events')
          .select(['user_id', 'seq', 'payload'])
          .where('user_id', 'in', [alice!, bob!])
          .orderBy('user_id')
          .execute();
        expect(
          events.map((e) => [e.user_id, Number(e.seq), JSON.parse(e.payload) as unknown]),
        ).toEqual([
          [alice, 6, { conversationId, seq: 4 }],
          [bob, 1, { conversationId, seq: 4 }],
        ]);

        // No conversation row to bump: the seq is NULL, the message insert fails, all rolls back.
        await expect(call(db, randomUUID(), alice!, now + 2)).rejects.toThrow(
          "Column 'seq' cannot be null",
        );
        // Decided on a role the sender no longer has (or on a membership that is gone).
        await expect(call(db, conversationId, alice!, now + 3, 'admin')).rejects.toThrow(
          'posting context changed',
        );
        await expect(call(db, conversationId, randomUUID(), now + 4)).rejects.toThrow(
          'posting context changed',
        );
        // Slow mode: alice posted at now + 1, so a send that needs her last post at or before
        // now is refused; at or before now + 1 it would pass.
        await expect(call(db, conversationId, alice!, now + 5, 'member', now)).rejects.toThrow(
          'slow mode',
        );
        const after = await db
          .selectFrom('user_streams')
          .select(['user_id', 'last_seq'])
          .where('user_id', 'in', [alice!, bob!])
          .orderBy('user_id')
          .execute();
        expect(after.map((s) => Number(s.last_seq))).toEqual([6, 1]);
        const conversation = await db
          .selectFrom('conversations')
          .select('last_seq')
          .where('id', '=', conversationId)
          .executeTakeFirstOrThrow();
        expect(Number(conversation.last_seq)).toBe(4);
        const stored = await db
          .selectFrom('messages')
          .select(['seq', 'ciphertext', 'created_at'])
          .where('sender_id', '=', alice!)
          .execute();
        expect(stored.map((m) => [Number(m.seq), Number(m.created_at)])).toEqual([[4, now + 1]]);
        expect(Buffer.from(stored[0]!.ciphertext!).equals(ciphertext)).toBe(true);
      } finally {
        await db.deleteFrom('conversations').where('id', '=', conversationId).execute();
        await db.deleteFrom('users').where('id', 'in', [alice!, bob!]).execute();
        await db.destroy();
      }
    });
  });
}
