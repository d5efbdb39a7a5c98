import type { Kysely, Transaction } from 'kysely';
import type { DB } from '@mvp/db';

type Db = Kysely<DB> | Transaction<DB>;

export type AvatarState = { key: string | null; lastActiveAt: number };

/** Null when the user does not exist (any more). */
export async function findAvatarState(db: Db, userId: string): Promise<AvatarState | null> {
  const row = await db
    .selectFrom('users')
    .select(['avatar_key', 'last_active_at'])
    .where('id', '=', userId)
    .executeTakeFirst();
  return row ? { key: row.avatar_key, lastActiveAt: Number(row.last_active_at) } : null;
}

/**
 * Compare-and-set: points the user at `next` only while the row still holds `expected`. False when
 * another upload (or a deletion) got there first, so the caller knows which blob is its to delete.
 */
export async function swapAvatarKey(
  db: Db,
  userId: string,
  expected: string | null,
  next: string | null,
  now: number,
): Promise<boolean> {
  const result = await db
    .updateTable('users')
    .set({ avatar_key: next, updated_at: now })
    .where('id', '=', userId)
    .where('avatar_key', expected === null ? 'is' : '=', expected)
    .executeTakeFirst();
  return Number(result.numUpdatedRows) === 1;
}

/**
 * Deletes the user row only while it still holds `expectedKey` (and, for the inactivity job, is
 * still inactive), so the blob the caller deletes afterwards is exactly the one the row pointed at.
 */
export async function deleteUserWithAvatarKey(
  db: Db,
  userId: string,
  expectedKey: string | null,
  inactiveBefore?: number,
): Promise<boolean> {
  let query = db
    .deleteFrom('users')
    .where('id', '=', userId)
    .where('avatar_key', expectedKey === null ? 'is' : '=', expectedKey);
  if (inactiveBefore !== undefined) query = query.where('last_active_at', '<', inactiveBefore);
  const result = await query.executeTakeFirst();
  return Number(result.numDeletedRows) === 1;
}
