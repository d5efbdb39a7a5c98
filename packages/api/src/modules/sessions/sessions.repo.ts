import type { Insertable, Kysely, Selectable, Transaction } from 'kysely';
import {
  prepared,
  type DB,
  type DevicesTable,
  type RefreshTokensTable,
  type SessionsTable,
} from '@mvp/db';

type Db = Kysely<DB> | Transaction<DB>;

export async function insertDevice(db: Db, row: Insertable<DevicesTable>): Promise<void> {
  await db.insertInto('devices').values(row).execute();
}

export async function insertSession(db: Db, row: Insertable<SessionsTable>): Promise<void> {
  await db.insertInto('sessions').values(row).execute();
}

export async function insertRefreshToken(
  db: Db,
  row: Insertable<RefreshTokensTable>,
): Promise<void> {
  await db.insertInto('refresh_tokens').values(row).execute();
}

export type RefreshRow = Selectable<RefreshTokensTable> & {
  user_id: string;
  device_id: string;
  session_expires_at: number;
  revoked_at: number | null;
};

export function findRefreshToken(db: Db, tokenHash: string): Promise<RefreshRow | undefined> {
  return db
    .selectFrom('refresh_tokens')
    .innerJoin('sessions', 'sessions.id', 'refresh_tokens.session_id')
    .select([
      'refresh_tokens.token_hash',
      'refresh_tokens.session_id',
      'refresh_tokens.created_at',
      'refresh_tokens.expires_at',
      'refresh_tokens.used_at',
      'refresh_tokens.parent_hash',
      'sessions.user_id',
      'sessions.device_id',
      'sessions.expires_at as session_expires_at',
      'sessions.revoked_at',
    ])
    .where('refresh_tokens.token_hash', '=', tokenHash)
    .executeTakeFirst();
}

/**
 * Whether a sibling of this token (rotated from the same parent) was used: the chain forked into
 * two that both go on, which a client's own retry or two tabs sharing one store never do.
 */
export async function siblingUsed(
  db: Db,
  token: { token_hash: string; parent_hash: string | null },
): Promise<boolean> {
  if (token.parent_hash === null) return false;
  const found = await db
    .selectFrom('refresh_tokens')
    .select('token_hash')
    .where('parent_hash', '=', token.parent_hash)
    .where('token_hash', '!=', token.token_hash)
    .where('used_at', 'is not', null)
    .executeTakeFirst();
  return found !== undefined;
}

/** Marks a refresh token used; false when someone else used it first (a replay). */
export async function markRefreshUsed(db: Db, tokenHash: string, now: number): Promise<boolean> {
  const result = await db
    .updateTable('refresh_tokens')
    .set({ used_at: now })
    .where('token_hash', '=', tokenHash)
    .where('used_at', 'is', null)
    .executeTakeFirst();
  return Number(result.numUpdatedRows) === 1;
}

export async function touchSession(
  db: Db,
  sessionId: string,
  deviceId: string,
  now: number,
): Promise<void> {
  await db.updateTable('sessions').set({ last_seen_at: now }).where('id', '=', sessionId).execute();
  await db.updateTable('devices').set({ last_seen_at: now }).where('id', '=', deviceId).execute();
}

// Every call's session check runs this once per session per cache window (see sessionGuard.ts):
// compiled once (see `prepared`).
const liveSession = prepared((db: Kysely<DB>, sessionId: string, now: number) =>
  db
    .selectFrom('sessions')
    .select(['user_id', 'device_id'])
    .where('id', '=', sessionId)
    .where('revoked_at', 'is', null)
    .where('expires_at', '>', now),
);

export async function findLiveSession(db: Kysely<DB>, sessionId: string, now: number) {
  const { rows } = await liveSession(db, sessionId, now);
  return rows[0];
}

export function listLiveSessions(db: Db, userId: string, now: number) {
  return db
    .selectFrom('sessions')
    .innerJoin('devices', 'devices.id', 'sessions.device_id')
    .select([
      'sessions.id',
      'sessions.created_at',
      'sessions.last_seen_at',
      'sessions.expires_at',
      'devices.id as device_id',
      'devices.name as device_name',
      'devices.platform as device_platform',
    ])
    .where('sessions.user_id', '=', userId)
    .where('sessions.revoked_at', 'is', null)
    .where('sessions.expires_at', '>', now)
    .orderBy('sessions.created_at', 'desc')
    .execute();
}

/** Revokes the user's live sessions matching the filter; returns the ids revoked. */
export async function revokeSessions(
  db: Db,
  filter: { userId: string; only?: string; except?: string },
  reason: string,
  now: number,
): Promise<{ id: string; device_id: string }[]> {
  let query = db
    .selectFrom('sessions')
    .select(['id', 'device_id'])
    .where('user_id', '=', filter.userId)
    .where('revoked_at', 'is', null);
  if (filter.only) query = query.where('id', '=', filter.only);
  if (filter.except) query = query.where('id', '!=', filter.except);
  const revoked = await query.execute();
  if (revoked.length === 0) return [];
  await db
    .updateTable('sessions')
    .set({ revoked_at: now, revoked_reason: reason })
    .where(
      'id',
      'in',
      revoked.map((r) => r.id),
    )
    .where('revoked_at', 'is', null)
    .execute();
  return revoked;
}
