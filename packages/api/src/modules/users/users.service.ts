import { sql, type Kysely } from 'kysely';
import type { DB } from '@mvp/db';
import type { TPrivacy, TPublicProfile, TSearchInput } from '@mvp/contracts';
import type { Context } from '../../context';
import { AppError } from '../../errors/AppError';
import { enforceLimit } from '../../rateLimit';
import * as users from '../auth/users.repo';
import { areContacts, isBlocked } from '../contacts/relations.repo';
import { presenceSettingChanged } from '../presence/presence';
import { phoneNumberOf } from './phoneNumber';
import { allows, publicProfiles } from './profiles';

const privacyOf = (u: users.UserRow): TPrivacy => ({
  findByPhone: u.privacy_find_by_phone as TPrivacy['findByPhone'],
  presence: u.privacy_presence as TPrivacy['presence'],
  contactRequests: u.privacy_requests as TPrivacy['contactRequests'],
  readReceipts: u.privacy_read_receipts === 1,
});

export async function getPrivacy(ctx: Context, userId: string): Promise<TPrivacy> {
  const user = await users.findUserById(ctx.ports.db, userId);
  if (!user) throw new AppError('UNAUTHORIZED', 'Session ended');
  return privacyOf(user);
}

export async function updatePrivacy(
  ctx: Context,
  userId: string,
  changes: Partial<TPrivacy>,
): Promise<TPrivacy> {
  const before = await getPrivacy(ctx, userId);
  await users.updateUser(ctx.ports.db, userId, {
    ...(changes.findByPhone ? { privacy_find_by_phone: changes.findByPhone } : {}),
    ...(changes.presence ? { privacy_presence: changes.presence } : {}),
    ...(changes.contactRequests ? { privacy_requests: changes.contactRequests } : {}),
    ...(changes.readReceipts !== undefined
      ? { privacy_read_receipts: changes.readReceipts ? 1 : 0 }
      : {}),
    updated_at: ctx.ports.clock.now(),
  });
  // Contacts see presence under both 'contacts' and 'everyone': only nobody <-> not nobody is news.
  const hiddenBefore = before.presence === 'nobody';
  if (changes.presence && (changes.presence === 'nobody') !== hiddenBefore)
    await presenceSettingChanged(ctx.ports, userId);
  return getPrivacy(ctx, userId);
}

export async function updateBio(ctx: Context, userId: string, bio: string): Promise<void> {
  await users.updateUser(ctx.ports.db, userId, {
    bio: bio || null,
    updated_at: ctx.ports.clock.now(),
  });
}

/** Someone else's profile; a user who does not exist and one hidden by a block look alike. */
export async function getProfile(
  ctx: Context,
  viewerId: string,
  userId: string,
): Promise<TPublicProfile> {
  const user = await users.findUserById(ctx.ports.db, userId);
  if (!user) throw new AppError('NOT_FOUND', 'No such user');
  const [profile] = await publicProfiles(ctx, viewerId, [user]);
  return profile!;
}

/**
 * Exact lookups and username prefixes only: there is no way to list everyone. Every search spends
 * the account's lookup budget; users who blocked the searcher, and phones whose owners do not
 * allow this searcher to find them, are simply not found.
 */
export async function search(
  ctx: Context,
  viewerId: string,
  input: TSearchInput,
): Promise<{ users: TPublicProfile[]; nextCursor: string | null }> {
  const given = (['username', 'uniqueId', 'phone', 'prefix'] as const).filter(
    (k) => input[k] !== undefined,
  );
  if (given.length !== 1) {
    throw new AppError(
      'BAD_REQUEST',
      'Search by exactly one of username, uniqueId, phone or prefix',
    );
  }
  // A malformed number is refused before it costs any of the budget.
  const phone = input.phone === undefined ? null : phoneNumberOf(input.phone);
  if (input.phone !== undefined && !phone)
    throw new AppError('BAD_REQUEST', 'Not a valid phone number');
  await enforceLimit(ctx, 'search-account', ctx.settings.people.searchLimit, viewerId);
  if (input.prefix !== undefined) return searchPrefix(ctx, viewerId, input.prefix, input);
  const db = ctx.ports.db;
  let found: users.UserRow | undefined;
  if (input.username !== undefined) {
    found = await users.findUserBy(db, 'username', input.username);
  } else if (input.uniqueId !== undefined) {
    found = await users.findUserBy(db, 'unique_id', input.uniqueId);
  } else if (phone) {
    const u = await users.findUserBy(
      db,
      'phone_index',
      ctx.ports.cipher.blindIndex(phone, 'phone'),
    );
    if (
      u &&
      (u.id === viewerId || allows(u.privacy_find_by_phone, await areContacts(db, u.id, viewerId)))
    ) {
      found = u;
    }
  }
  if (!found || (await isBlocked(db, found.id, viewerId))) return { users: [], nextCursor: null };
  return { users: await publicProfiles(ctx, viewerId, [found]), nextCursor: null };
}

/**
 * Above every username that starts with a prefix, in SQLite's byte order and in MySQL's
 * collations alike: the last code point. (Not the next ASCII character after 'z': '{' sorts
 * before the letters in utf8mb4_unicode_ci.)
 */
const PAST_PREFIX = '\u{10FFFF}';

/**
 * Up to `limit` users whose username starts with `prefix` and follows `cursor`, in username
 * order, leaving out users who blocked the viewer. The LIKE is case-insensitive and SQLite's
 * username index compares bytes, so the LIKE alone read every username; the range beside it is
 * what the index is searched by. Usernames and prefixes are lower-case a–z, 0–9 and _ (see
 * ZUsername), so the range drops nothing the LIKE matches.
 */
export function usernamesStartingWith(
  db: Kysely<DB>,
  viewerId: string,
  prefix: string,
  cursor: string | undefined,
  limit: number,
) {
  // '_' is a LIKE wildcard and a legal username character: escape it (and the escape itself).
  const pattern = `${prefix.replace(/[!%_]/g, '!$&')}%`;
  let query = db
    .selectFrom('users')
    .selectAll()
    .where(sql<boolean>`${sql.ref('username')} like ${pattern} escape '!'`)
    .where('username', '>=', prefix)
    .where('username', '<', `${prefix}${PAST_PREFIX}`)
    .where((eb) =>
      eb.not(
        eb.exists(
          eb
            .selectFrom('blocks')
            .select('blocks.blocker_id')
            .whereRef('blocks.blocker_id', '=', 'users.id')
            .where('blocks.blocked_id', '=', viewerId),
        ),
      ),
    )
    .orderBy('username')
    .limit(limit);
  if (cursor) query = query.where('username', '>', cursor);
  return query;
}

/**
 * A page of usernames starting with `prefix`. Users who blocked the searcher are left out in the
 * query, before the page is cut: left out after, a page could come back empty with a cursor
 * naming one of them.
 */
async function searchPrefix(
  ctx: Context,
  viewerId: string,
  prefix: string,
  page: Pick<TSearchInput, 'cursor' | 'limit'>,
): Promise<{ users: TPublicProfile[]; nextCursor: string | null }> {
  const limit = page.limit ?? 20;
  const rows = await usernamesStartingWith(
    ctx.ports.db,
    viewerId,
    prefix,
    page.cursor,
    limit + 1,
  ).execute();
  const found = rows.slice(0, limit);
  const nextCursor = rows.length > limit ? (found[found.length - 1]!.username ?? null) : null;
  // The budget counts profiles, not calls: a page of fifty for one point would list every user
  // with two-letter prefixes (the search was paid one point already; the rest of the page now).
  const searchLimit = ctx.settings.people.searchLimit;
  if (found.length > 1)
    await enforceLimit(ctx, 'search-account', searchLimit, viewerId, found.length - 1);
  return { users: await publicProfiles(ctx, viewerId, found), nextCursor };
}
