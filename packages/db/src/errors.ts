/**
 * True when a write failed on a UNIQUE constraint, on either dialect. Services use it to turn a
 * race (two registrations of one username) into CONFLICT instead of an internal error.
 */
export function isUniqueViolation(error: unknown): boolean {
  const e = error as { code?: unknown; errno?: unknown; message?: unknown } | null;
  if (!e) return false;
  if (e.code === 'ER_DUP_ENTRY' || e.errno === 1062) return true; // MySQL / MariaDB
  if (e.code === 'SQLITE_CONSTRAINT_UNIQUE' || e.code === 'SQLITE_CONSTRAINT_PRIMARYKEY')
    return true;
  return false;
}

/**
 * True when a write failed on a FOREIGN KEY constraint, on either dialect: the row it points at
 * is gone (say, an account deleted between a service's check and its write).
 */
export function isForeignKeyViolation(error: unknown): boolean {
  const e = error as { code?: unknown; errno?: unknown } | null;
  if (!e) return false;
  // MySQL / MariaDB: ER_NO_REFERENCED_ROW_2 (and its older twin ER_NO_REFERENCED_ROW).
  if (e.code === 'ER_NO_REFERENCED_ROW_2' || e.errno === 1452 || e.errno === 1216) return true;
  return e.code === 'SQLITE_CONSTRAINT_FOREIGNKEY';
}

/** The database picked this transaction as a deadlock victim and rolled it back (MySQL). */
export function isDeadlock(error: unknown): boolean {
  const e = error as { code?: unknown; errno?: unknown } | null;
  return e?.code === 'ER_LOCK_DEADLOCK' || e?.errno === 1213;
}

/** How many times in all a transaction picked as a deadlock victim is run. */
const DEADLOCK_ATTEMPTS = 3;

/**
 * Runs `transaction` again when the database picked it as a deadlock victim, up to three times
 * in all: a victim was rolled back whole, so running it again is safe. `transaction` must make
 * afresh whatever it fills in (a StreamWrites, say) on each run.
 */
export async function retryingDeadlocks<T>(transaction: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await transaction();
    } catch (err) {
      if (!isDeadlock(err) || attempt === DEADLOCK_ATTEMPTS) throw err;
    }
  }
}
