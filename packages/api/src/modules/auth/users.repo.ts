import type { Insertable, Kysely, Selectable, Transaction, Updateable } from 'kysely';
import { prepared, type DB, type UsersTable } from '@mvp/db';

type Db = Kysely<DB> | Transaction<DB>;
export type UserRow = Selectable<UsersTable>;

export function findUserById(db: Db, id: string): Promise<UserRow | undefined> {
  return db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst();
}

export function findUsersByIds(db: Db, ids: string[]): Promise<UserRow[]> {
  if (ids.length === 0) return Promise.resolve([]);
  return db.selectFrom('users').selectAll().where('id', 'in', ids).execute();
}

// Existence checks run on hot paths (a call start, a direct conversation): one narrow query,
// compiled once, instead of the whole row.
const userIdOf = prepared((db: Kysely<DB>, id: string) =>
  db.selectFrom('users').select('id').where('id', '=', id),
);

export async function userExists(db: Db, id: string): Promise<boolean> {
  return (await userIdOf(db, id)).rows.length > 0;
}

export function findUserBy(
  db: Db,
  column: 'username' | 'unique_id' | 'phone_index',
  value: string,
): Promise<UserRow | undefined> {
  return db.selectFrom('users').selectAll().where(column, '=', value).executeTakeFirst();
}

export async function usernameTaken(db: Db, username: string): Promise<boolean> {
  const row = await db
    .selectFrom('users')
    .select('id')
    .where('username', '=', username)
    .executeTakeFirst();
  return row !== undefined;
}

/** A user and their (empty) event stream: every user has one from the start. */
export async function insertUser(db: Db, row: Insertable<UsersTable>): Promise<void> {
  await db.insertInto('users').values(row).execute();
  await db.insertInto('user_streams').values({ user_id: row.id }).execute();
}

export async function updateUser(
  db: Db,
  id: string,
  changes: Updateable<UsersTable>,
): Promise<void> {
  await db.updateTable('users').set(changes).where('id', '=', id).execute();
}

export async function deleteUser(db: Db, id: string): Promise<void> {
  await db.deleteFrom('users').where('id', '=', id).execute();
}
