import { newId } from '../../ids';
import { isForeignKeyViolation, isUniqueViolation } from '@mvp/db';
import type { Kysely, Transaction } from 'kysely';
import type { TContactRequest, TPeopleEvent, TPublicProfile } from '@mvp/contracts';
import type { DB } from '@mvp/db';
import type { Context } from '../../context';
import { AppError } from '../../errors/AppError';
import { enforceLimit } from '../../rateLimit';
import * as users from '../auth/users.repo';
import { directKeyOf } from '../conversations/conversations.repo';
import { announcePostingChanged } from '../messages/postingCache';
import { allows, publicProfiles } from '../users/profiles';
import { recordEvents, wake } from '../sync/events';
import { contactRemoved, requestCancelled } from './peopleEvents';
import * as rel from './relations.repo';

type RequestRow = NonNullable<Awaited<ReturnType<typeof rel.findRequest>>>;

async function profileFor(
  ctx: Context,
  viewerId: string,
  userId: string,
  options: { asContacts?: boolean } = {},
): Promise<TPublicProfile> {
  const user = await users.findUserById(ctx.ports.db, userId);
  if (!user) throw new AppError('NOT_FOUND', 'No such user');
  return (await publicProfiles(ctx, viewerId, [user], options))[0]!;
}

/**
 * Requests as `viewerId` sees them, the other sides' profiles read together (a list of requests
 * is not one query per request). `known` are user rows the caller has already read. A request
 * whose other side is gone is left out.
 */
async function describeRequests(
  ctx: Context,
  viewerId: string,
  rows: RequestRow[],
  known: users.UserRow[] = [],
): Promise<TContactRequest[]> {
  const otherOf = (row: RequestRow) =>
    row.to_user_id === viewerId ? row.from_user_id : row.to_user_id;
  const ids = [...new Set(rows.map(otherOf))];
  const byId = new Map(known.map((u) => [u.id, u]));
  const missing = ids.filter((id) => !byId.has(id));
  for (const user of await users.findUsersByIds(ctx.ports.db, missing)) byId.set(user.id, user);
  const others = ids.flatMap((id) => byId.get(id) ?? []);
  const shown = rows.filter((row) => byId.has(otherOf(row)));
  const profiles = new Map(
    (await publicProfiles(ctx, viewerId, others)).map((profile) => [profile.id, profile]),
  );
  return shown.map((row) => ({
    id: row.id,
    direction: row.to_user_id === viewerId ? 'incoming' : 'outgoing',
    user: profiles.get(otherOf(row))!,
    message: row.message,
    createdAt: new Date(row.created_at).toISOString(),
  }));
}

/**
 * Makes a change and stores the events telling both people about it in the same transaction
 * (they reach every device on its sync stream, also later: my other devices follow what I did
 * here), then wakes their subscriptions.
 */
async function changeAndTell(
  ctx: Context,
  change: (trx: Transaction<DB>) => Promise<void>,
  tell: { userId: string; event: Exclude<TPeopleEvent, { type: 'presence' }> }[],
): Promise<void> {
  const now = ctx.ports.clock.now();
  await ctx.ports.db.transaction().execute(async (trx) => {
    await change(trx);
    for (const { userId, event } of tell) await recordEvents(trx, [userId], event, now);
  });
  await wake(
    ctx.ports,
    tell.map((t) => t.userId),
  );
}

const NOT_ACCEPTING = 'This user does not accept contact requests';

/**
 * Refuses a request between two people either of whom blocked the other: mine to lift (CONFLICT),
 * theirs answered like anyone who accepts no requests (FORBIDDEN), so it is not revealed.
 */
async function refuseIfBlocked(
  ctx: Context,
  db: Kysely<DB> | Transaction<DB>,
  me: string,
  them: string,
) {
  const blockers = await rel.blockersBetween(ctx, db, me, them);
  if (blockers.includes(me)) throw new AppError('CONFLICT', 'Unblock this user first');
  if (blockers.length > 0) throw new AppError('FORBIDDEN', NOT_ACCEPTING);
}

/**
 * An account deleted between a check and the write fails the write on a foreign key: answered as
 * if it had never been there.
 */
function goneAsNotFound(err: unknown): never {
  if (isForeignKeyViolation(err)) throw new AppError('NOT_FOUND', 'No such user');
  throw err;
}

/** After a decline, the same person may ask again only this much later. */
const ASK_AGAIN_AFTER_MS = 24 * 3600 * 1000;
const declinedKey = (from: string, to: string) => `contact-declined:${from}:${to}`;

/**
 * Sends a contact request. A user who blocked me and one who accepts no requests answer alike.
 * Asking someone who already asked me accepts their request.
 */
export async function sendRequest(
  ctx: Context,
  me: string,
  input: { userId: string; message?: string },
) {
  const db = ctx.ports.db;
  if (input.userId === me) throw new AppError('BAD_REQUEST', 'You cannot add yourself');
  const target = await users.findUserById(db, input.userId);
  if (!target) throw new AppError('NOT_FOUND', 'No such user');
  await refuseIfBlocked(ctx, db, me, target.id);
  if (await rel.areContacts(db, me, target.id))
    return { status: 'already_contacts' as const, requestId: null };

  const theirs = await rel.findRequestBetween(db, target.id, me);
  if (theirs) {
    await acceptRequest(ctx, me, theirs.id);
    return { status: 'accepted' as const, requestId: theirs.id };
  }
  if (!allows(target.privacy_requests, false)) throw new AppError('FORBIDDEN', NOT_ACCEPTING);
  const mine = await rel.findRequestBetween(db, me, target.id);
  if (mine) return { status: 'pending' as const, requestId: mine.id };
  // Declined: not again for a day (asking again at once would undo the decline). Then the
  // account's own daily budget: every request lands on someone's stream.
  const cooling = await ctx.ports.kv.ttlMs(declinedKey(me, target.id));
  if (cooling !== null && cooling > 0)
    throw new AppError('TOO_MANY_REQUESTS', 'They declined; you can ask again later', {
      retryAfterMs: cooling,
    });
  await enforceLimit(ctx, 'contact-request-account', ctx.settings.people.requestLimit, me);

  const row: RequestRow = {
    id: newId(),
    from_user_id: me,
    to_user_id: target.id,
    message: input.message || null,
    created_at: ctx.ports.clock.now(),
  };
  const [[received], [sent]] = await Promise.all([
    describeRequests(ctx, target.id, [row]),
    describeRequests(ctx, me, [row], [target]),
  ]);
  // The target was just read; only my own account can be gone (deleted meanwhile).
  if (!received || !sent) throw new AppError('NOT_FOUND', 'No such user');
  try {
    await changeAndTell(
      ctx,
      async (trx) => {
        await trx.insertInto('contact_requests').values(row).execute();
        // Again, after the insert and under lock: a block committed since the check above, or
        // still being written, must not let the request through. (A block deletes the pair's
        // requests first: one that came before this insert made it wait for that block's
        // commit, and one that came after deletes this request once this commits.)
        await refuseIfBlocked(ctx, trx, me, target.id);
      },
      [
        { userId: target.id, event: { type: 'contact.request.received', request: received } },
        { userId: me, event: { type: 'contact.request.sent', request: sent } },
      ],
    );
  } catch (err) {
    if (!isUniqueViolation(err)) goneAsNotFound(err);
    const raced = await rel.findRequestBetween(db, me, target.id);
    return { status: 'pending' as const, requestId: raced?.id ?? null };
  }
  return { status: 'pending' as const, requestId: row.id };
}

export async function listRequests(ctx: Context, me: string) {
  const rows = await ctx.ports.db
    .selectFrom('contact_requests')
    .selectAll()
    .where((eb) => eb.or([eb('to_user_id', '=', me), eb('from_user_id', '=', me)]))
    .orderBy('created_at', 'desc')
    .execute();
  const described = await describeRequests(ctx, me, rows);
  return {
    incoming: described.filter((r) => r.direction === 'incoming'),
    outgoing: described.filter((r) => r.direction === 'outgoing'),
  };
}

/** Someone else's request id looks exactly like one that does not exist. */
async function ownRequest(
  ctx: Context,
  me: string,
  id: string,
  side: 'to' | 'from',
): Promise<RequestRow> {
  const row = await rel.findRequest(ctx.ports.db, id);
  const mine = row && (side === 'to' ? row.to_user_id === me : row.from_user_id === me);
  if (!row || !mine) throw new AppError('NOT_FOUND', 'No such request');
  return row;
}

export async function acceptRequest(ctx: Context, me: string, id: string): Promise<void> {
  const row = await ownRequest(ctx, me, id, 'to');
  // Each side's new contact as it will see them once we are contacts (presence included).
  const accepted = async (viewer: string, user: string) => ({
    type: 'contact.request.accepted' as const,
    requestId: row.id,
    user: await profileFor(ctx, viewer, user, { asContacts: true }),
  });
  const [toRequester, toMe] = await Promise.all([
    accepted(row.from_user_id, me),
    accepted(me, row.from_user_id),
  ]);
  await changeAndTell(
    ctx,
    async (trx) => {
      // The request must still be there: a cancel or a block that got in first deleted it (and a
      // block also deletes it first, under the same row lock, so the two take turns).
      const taken = await trx.deleteFrom('contact_requests').where('id', '=', row.id).execute();
      if (Number(taken[0]?.numDeletedRows ?? 0) !== 1)
        throw new AppError('NOT_FOUND', 'No such request');
      if (await rel.eitherBlocked(trx, row.from_user_id, me))
        throw new AppError('NOT_FOUND', 'No such request');
      await rel.addContactPair(trx, row.from_user_id, me, ctx.ports.clock.now());
      await rel.deleteRequestsBetween(trx, row.from_user_id, me);
    },
    [
      { userId: row.from_user_id, event: toRequester },
      { userId: me, event: toMe },
    ],
  );
}

async function deleteRequest(trx: Transaction<DB>, id: string): Promise<void> {
  await trx.deleteFrom('contact_requests').where('id', '=', id).execute();
}

export async function declineRequest(ctx: Context, me: string, id: string): Promise<void> {
  const row = await ownRequest(ctx, me, id, 'to');
  const event = { type: 'contact.request.declined' as const, requestId: row.id };
  await changeAndTell(ctx, (trx) => deleteRequest(trx, row.id), [
    { userId: row.from_user_id, event },
    { userId: me, event },
  ]);
  await ctx.ports.kv.set(declinedKey(row.from_user_id, me), '1', { ttlMs: ASK_AGAIN_AFTER_MS });
}

export async function cancelRequest(ctx: Context, me: string, id: string): Promise<void> {
  const row = await ownRequest(ctx, me, id, 'from');
  const event = requestCancelled(row.id);
  await changeAndTell(ctx, (trx) => deleteRequest(trx, row.id), [
    { userId: row.to_user_id, event },
    { userId: me, event },
  ]);
}

export async function listContacts(ctx: Context, me: string): Promise<TPublicProfile[]> {
  const rows = await ctx.ports.db
    .selectFrom('contacts')
    .innerJoin('users', 'users.id', 'contacts.contact_id')
    .selectAll('users')
    .where('contacts.user_id', '=', me)
    .orderBy('contacts.created_at', 'desc')
    .execute();
  return publicProfiles(ctx, me, rows);
}

export async function removeContact(ctx: Context, me: string, userId: string): Promise<void> {
  await changeAndTell(
    ctx,
    async (trx) => {
      if (!(await rel.removeContactPair(trx, me, userId)))
        throw new AppError('NOT_FOUND', 'Not a contact');
    },
    [
      { userId, event: contactRemoved(me) },
      { userId: me, event: contactRemoved(userId) },
    ],
  );
}

/** Blocking ends the contact and any pending request, and tells the blocked user nothing. */
export async function block(ctx: Context, me: string, userId: string): Promise<void> {
  if (userId === me) throw new AppError('BAD_REQUEST', 'You cannot block yourself');
  const db = ctx.ports.db;
  if (!(await users.userExists(db, userId))) throw new AppError('NOT_FOUND', 'No such user');
  await changeAndTell(
    ctx,
    async (trx) => {
      // Requests first: an accept racing this block deletes the same request row first too, so
      // one waits for the other and either the accept finds it gone or the pair it made is
      // removed just below.
      await rel.deleteRequestsBetween(trx, me, userId);
      if (!(await rel.isBlocked(trx, me, userId))) {
        await trx
          .insertInto('blocks')
          .values({ blocker_id: me, blocked_id: userId, created_at: ctx.ports.clock.now() })
          .execute();
      }
      await rel.removeContactPair(trx, me, userId);
    },
    [{ userId: me, event: { type: 'block.added', userId } }],
  ).catch(goneAsNotFound);
  await postingChangedBetween(ctx, me, userId);
}

/** Sends in the two people's direct conversation are decided afresh (see postingCache). */
async function postingChangedBetween(ctx: Context, a: string, b: string): Promise<void> {
  const direct = await ctx.ports.db
    .selectFrom('conversations')
    .select('id')
    .where('direct_key', '=', directKeyOf(a, b))
    .executeTakeFirst();
  if (direct) await announcePostingChanged(ctx.ports, [direct.id]);
}

export async function unblock(ctx: Context, me: string, userId: string): Promise<void> {
  await changeAndTell(
    ctx,
    async (trx) => {
      const result = await trx
        .deleteFrom('blocks')
        .where('blocker_id', '=', me)
        .where('blocked_id', '=', userId)
        .executeTakeFirst();
      if (Number(result.numDeletedRows) === 0) throw new AppError('NOT_FOUND', 'Not blocked');
    },
    [{ userId: me, event: { type: 'block.removed', userId } }],
  );
  await postingChangedBetween(ctx, me, userId);
}

export async function listBlocks(ctx: Context, me: string) {
  const rows = await ctx.ports.db
    .selectFrom('blocks')
    .innerJoin('users', 'users.id', 'blocks.blocked_id')
    .select(['users.id', 'users.username', 'blocks.created_at'])
    .where('blocks.blocker_id', '=', me)
    .orderBy('blocks.created_at', 'desc')
    .execute();
  return rows.map((r) => ({
    id: r.id,
    username: r.username,
    blockedAt: new Date(r.created_at).toISOString(),
  }));
}
