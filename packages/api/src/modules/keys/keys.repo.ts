import type { Kysely, Selectable, Transaction } from 'kysely';
import type { DB, DeviceKeysTable } from '@mvp/db';

type Db = Kysely<DB> | Transaction<DB>;
export type DeviceKeysRow = Selectable<DeviceKeysTable>;

/**
 * Published keys of the users' devices that still have a live session: a signed-out or revoked
 * device drops out of the directory at once, so senders stop encrypting to it.
 */
export function liveDeviceKeys(db: Db, userIds: string[], now: number) {
  return db
    .selectFrom('device_keys as k')
    .selectAll('k')
    .where('k.user_id', 'in', userIds)
    .where((eb) =>
      eb.exists(
        eb
          .selectFrom('sessions as s')
          .select('s.id')
          .whereRef('s.device_id', '=', 'k.device_id')
          .where('s.revoked_at', 'is', null)
          .where('s.expires_at', '>', now),
      ),
    )
    .orderBy('k.created_at')
    .orderBy('k.device_id')
    .execute();
}

export async function prekeyCount(db: Db, deviceId: string): Promise<number> {
  const row = await db
    .selectFrom('one_time_prekeys')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('device_id', '=', deviceId)
    .executeTakeFirst();
  return Number(row?.n ?? 0);
}

/**
 * Takes one one-time prekey of the device for good, or null when none is left. Each attempt is
 * a single DELETE of one row, so two claimers can never both get a key; a lost race means
 * someone else took that key, so the loop ends after at most one try per stored key. A random
 * pick among the oldest few keeps concurrent claimers from all aiming at the same row.
 */
export async function claimPrekey(
  db: Db,
  deviceId: string,
): Promise<{ keyId: number; publicKey: string } | null> {
  for (;;) {
    const candidates = await db
      .selectFrom('one_time_prekeys')
      .select(['key_id', 'public_key'])
      .where('device_id', '=', deviceId)
      .orderBy('key_id')
      .limit(16)
      .execute();
    if (candidates.length === 0) return null;
    const pick = candidates[Math.floor(Math.random() * candidates.length)]!;
    const taken = await db
      .deleteFrom('one_time_prekeys')
      .where('device_id', '=', deviceId)
      .where('key_id', '=', pick.key_id)
      .executeTakeFirst();
    if (Number(taken.numDeletedRows) === 1)
      return { keyId: Number(pick.key_id), publicKey: pick.public_key };
  }
}

/** Everyone who should hear about my keys: contacts, people I share a conversation with, me. */
export async function keyAudience(db: Db, userId: string): Promise<string[]> {
  const [contacts, peers] = await Promise.all([
    db.selectFrom('contacts').select('contact_id as id').where('user_id', '=', userId).execute(),
    db
      .selectFrom('conversation_members as mine')
      .innerJoin('conversation_members as other', 'other.conversation_id', 'mine.conversation_id')
      .select('other.user_id as id')
      .where('mine.user_id', '=', userId)
      .distinct()
      .execute(),
  ]);
  return [...new Set([userId, ...contacts.map((r) => r.id), ...peers.map((r) => r.id)])];
}
