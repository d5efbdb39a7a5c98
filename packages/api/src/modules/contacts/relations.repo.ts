import type { ExpressionBuilder, Kysely, Transaction } from 'kysely';
import { prepared, type DB } from '@mvp/db';
import type { Context } from '../../context';
import { locking } from '../../locking';

type Db = Kysely<DB> | Transaction<DB>;

export async function isBlocked(db: Db, blockerId: string, blockedId: string): Promise<boolean> {
  const row = await db
    .selectFrom('blocks')
    .select('blocker_id')
    .where('blocker_id', '=', blockerId)
    .where('blocked_id', '=', blockedId)
    .executeTakeFirst();
  return row !== undefined;
}

/** A block between `a` and `b`, whichever of them made it. */
const eitherWay = (eb: ExpressionBuilder<DB, 'blocks'>, a: string, b: string) =>
  eb.or([
    eb.and([eb('blocker_id', '=', a), eb('blocked_id', '=', b)]),
    eb.and([eb('blocker_id', '=', b), eb('blocked_id', '=', a)]),
  ]);

// Asked on every call start (and key claim, direct conversation, contact answer): compiled once
// (see `prepared`).
const blockEitherWay = prepared((db: Kysely<DB>, a: string, b: string) =>
  db
    .selectFrom('blocks')
    .select('blocker_id')
    .where((eb) => eitherWay(eb, a, b))
    .limit(1),
);

/**
 * Who of two users blocked the other (none, one or both), read under lock on MySQL (see
 * `locking`): inside a transaction, a block committed since its snapshot is seen, and one still
 * being written is waited for.
 */
export async function blockersBetween(
  ctx: Context,
  db: Db,
  a: string,
  b: string,
): Promise<string[]> {
  const rows = await locking(
    ctx,
    db
      .selectFrom('blocks')
      .select('blocker_id')
      .where((eb) => eitherWay(eb, a, b)),
  ).execute();
  return rows.map((r) => r.blocker_id);
}

/** Everyone `userId` blocked or was blocked by: two index reads, as a user has few blocks. */
export async function blockedEitherWayWith(db: Db, userId: string): Promise<Set<string>> {
  const [mine, theirs] = await Promise.all([
    db.selectFrom('blocks').select('blocked_id as id').where('blocker_id', '=', userId).execute(),
    db.selectFrom('blocks').select('blocker_id as id').where('blocked_id', '=', userId).execute(),
  ]);
  return new Set([...mine, ...theirs].map((r) => r.id));
}

/** Whether either of two users blocked the other, in one query. */
export async function eitherBlocked(db: Db, a: string, b: string): Promise<boolean> {
  return (await blockEitherWay(db, a, b)).rows.length > 0;
}

export async function areContacts(db: Db, userId: string, otherId: string): Promise<boolean> {
  const row = await db
    .selectFrom('contacts')
    .select('user_id')
    .where('user_id', '=', userId)
    .where('contact_id', '=', otherId)
    .executeTakeFirst();
  return row !== undefined;
}

/** Of `candidates`, those who are my contacts and those who blocked me: one query each. */
export async function relationsTo(db: Db, viewerId: string, candidates: string[]) {
  if (candidates.length === 0) return { contacts: new Set<string>(), blockedMe: new Set<string>() };
  const [contacts, blockedMe] = await Promise.all([
    db
      .selectFrom('contacts')
      .select('contact_id')
      .where('user_id', '=', viewerId)
      .where('contact_id', 'in', candidates)
      .execute(),
    db
      .selectFrom('blocks')
      .select('blocker_id')
      .where('blocked_id', '=', viewerId)
      .where('blocker_id', 'in', candidates)
      .execute(),
  ]);
  return {
    contacts: new Set(contacts.map((r) => r.contact_id)),
    blockedMe: new Set(blockedMe.map((r) => r.blocker_id)),
  };
}

export async function addContactPair(db: Db, a: string, b: string, now: number): Promise<void> {
  await db
    .deleteFrom('contacts')
    .where((eb) =>
      eb.or([
        eb.and([eb('user_id', '=', a), eb('contact_id', '=', b)]),
        eb.and([eb('user_id', '=', b), eb('contact_id', '=', a)]),
      ]),
    )
    .execute();
  await db
    .insertInto('contacts')
    .values([
      { user_id: a, contact_id: b, created_at: now },
      { user_id: b, contact_id: a, created_at: now },
    ])
    .execute();
}

/** Removes the contact both ways; answers whether there was one. */
export async function removeContactPair(db: Db, a: string, b: string): Promise<boolean> {
  const result = await db
    .deleteFrom('contacts')
    .where((eb) =>
      eb.or([
        eb.and([eb('user_id', '=', a), eb('contact_id', '=', b)]),
        eb.and([eb('user_id', '=', b), eb('contact_id', '=', a)]),
      ]),
    )
    .executeTakeFirst();
  return Number(result.numDeletedRows) > 0;
}

export function findRequestBetween(db: Db, fromId: string, toId: string) {
  return db
    .selectFrom('contact_requests')
    .selectAll()
    .where('from_user_id', '=', fromId)
    .where('to_user_id', '=', toId)
    .executeTakeFirst();
}

export function findRequest(db: Db, id: string) {
  return db.selectFrom('contact_requests').selectAll().where('id', '=', id).executeTakeFirst();
}

export async function deleteRequestsBetween(db: Db, a: string, b: string): Promise<string[]> {
  const rows = await db
    .selectFrom('contact_requests')
    .select('id')
    .where((eb) =>
      eb.or([
        eb.and([eb('from_user_id', '=', a), eb('to_user_id', '=', b)]),
        eb.and([eb('from_user_id', '=', b), eb('to_user_id', '=', a)]),
      ]),
    )
    .execute();
  const ids = rows.map((r) => r.id);
  if (ids.length) await db.deleteFrom('contact_requests').where('id', 'in', ids).execute();
  return ids;
}
