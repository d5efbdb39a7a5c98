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

/** The database picked this transaction as a deadlock victim and rolled it back (MySQL). */
export function isDeadlock(error: unknown): boolean {
  const e = error as { code?: unknown; errno?: unknown } | null;
  return e?.code === 'ER_LOCK_DEADLOCK' || e?.errno === 1213;
}
