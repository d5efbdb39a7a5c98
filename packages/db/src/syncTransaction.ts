import type { Kysely } from 'kysely';
import { embeddedOf, type RunSync } from './embedded';

export type { RunSync } from './embedded';

/**
 * `work` as one SQLite transaction in one synchronous call. A Kysely transaction runs each
 * statement as its own promise (the driver's connection mutex, the executor, a microtask hop or
 * more per statement), although better-sqlite3 runs each synchronously anyway, and other
 * requests' work runs between them while it holds the connection. For a message send's nine
 * statements that was about a third of their time back-to-back, 10–20 µs (bench/README.md,
 * session 13). Nothing can interleave with it: it runs in one synchronous call. When no
 * transaction is open on the connection it runs at once; otherwise (a Kysely transaction is
 * between statements) it waits for Kysely's one connection. Going around Kysely's connection
 * mutex when idle is safe because nothing runs on the connection meanwhile (better-sqlite3 runs
 * each Kysely statement synchronously too), and it spares a send the mutex's promises and
 * closures (about 4 KB of the 60 KB a relayed message allocated, bench/README session 20).
 * `work` must not await: it runs inside better-sqlite3's transaction, which commits when it
 * returns and rolls back if it throws. Only for a `db` createDb made on SQLite.
 */
export async function syncTransaction<DB, T>(
  db: Kysely<DB>,
  work: (run: RunSync<DB>) => T,
): Promise<T> {
  const handle = embeddedOf(db);
  if (!handle) throw new Error('syncTransaction: not an embedded database made by createDb');
  if (handle.idle()) return handle.transaction(work as (run: RunSync<unknown>) => unknown) as T;
  return db
    .connection()
    .execute(async () => handle.transaction(work as (run: RunSync<unknown>) => unknown) as T);
}
