import type { ExecuteValues, Pool } from 'mysql2';

const pools = new WeakMap<object, Pool>();

/** Called by createDb: `db` runs on the mysql2 `pool`. */
export function registerMysqlPool(db: object, pool: Pool): void {
  pools.set(db, pool);
}

/**
 * Runs one statement of a hot path as a server-side prepared statement: mysql2's `execute`
 * prepares it once per pooled connection (and keeps it, by its text), then sends only the
 * arguments, in binary. Kysely's driver sends every query as text with its arguments spelled
 * out (a send's ciphertext as a hex literal), which MariaDB parses again each time.
 *
 * mysql2 binds a JavaScript number as a DOUBLE: use this for statements whose number arguments
 * land in typed places (a procedure's parameters, a column), never in a `LIMIT`. Answers what
 * mysql2 answers: for a `CALL`, its result sets, then the procedure's own status.
 */
export function executePrepared<Result>(
  db: object,
  sql: string,
  args: ExecuteValues[],
): Promise<Result> {
  const pool = pools.get(db);
  // Fail closed: a transaction's handle, or an embedded database, has no pool of its own here.
  if (!pool) return Promise.reject(new Error('executePrepared: not a MySQL database of createDb'));
  return new Promise((resolve, reject) => {
    pool.execute(sql, args, (err, result) => (err ? reject(err) : resolve(result as Result)));
  });
}
