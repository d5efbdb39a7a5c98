import type { Kysely, Transaction } from 'kysely';
import type { DB } from '@mvp/db';

export async function findMetaValue(
  db: Kysely<DB> | Transaction<DB>,
  key: string,
): Promise<string | null> {
  const row = await db
    .selectFrom('app_meta')
    .select('value')
    .where('key', '=', key)
    .executeTakeFirst();
  return row?.value ?? null;
}
