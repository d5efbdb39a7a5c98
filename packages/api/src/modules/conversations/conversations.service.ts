import type { Insertable, Kysely, Transaction } from 'kysely';
import { newId } from '../../ids';
import type { TConversation, TMemberRole } from '@mvp/contracts';
import { isUniqueViolation, type ConversationsTable, type DB } from '@mvp/db';
import type { Context } from '../../context';
import { AppError } from '../../errors/AppError';
import { lockConversationRow } from '../../locking';
import * as users from '../auth/users.repo';
import * as rel from '../contacts/relations.repo';
import { deleteBlobQuietly } from '../me/avatarBlobs';
import { announcePostingChanged } from '../messages/postingCache';
import { recordEach, recordEvents, wake } from '../sync/events';
import * as repo from './conversations.repo';

const NOT_FOUND = 'No such conversation';
const ADMINS: readonly string[] = ['owner', 'admin'];

/** My membership, or NOT_FOUND: a conversation I am not in does not exist for me. */
export async function requireMember(ctx: Context, conversationId: string, me: string) {
  const [conversation, membership] = await Promise.all([
    repo.findConversation(ctx.ports.db, conversationId),
    repo.findMembership(ctx.ports.db, conversationId, me),
  ]);
  if (!conversation || !membership) throw new AppError('NOT_FOUND', NOT_FOUND);
  return { conversation, membership };
}

/**
 * Takes the conversation row lock and reads my membership under it. Membership and role
 * changes of one conversation take turns under this lock, and it is the transaction's first
 * statement, so what is read after it is current (a check made before the transaction may no
 * longer hold: a role changed, a member left). NOT_FOUND when I am no longer a member.
 */
async function lockedMembership(
  trx: Transaction<DB>,
  conversationId: string,
  me: string,
  now: number,
) {
  await lockConversation(trx, conversationId, now);
  const membership = await repo.findMembership(trx, conversationId, me);
  if (!membership) throw new AppError('NOT_FOUND', NOT_FOUND);
  return membership;
}

/**
 * For what only admins do that changes no membership (invites, the picture): the conversation's
 * row lock, then my role read under it. A check made before the transaction may be stale: an
 * admin demoted or removed meanwhile would still make a working invite. FORBIDDEN once I am no
 * longer an admin, NOT_FOUND once no longer a member.
 */
export async function lockedAdmin(
  ctx: Context,
  trx: Transaction<DB>,
  conversationId: string,
  me: string,
): Promise<void> {
  await lockConversationRow(ctx, trx, conversationId);
  const membership = await repo.findMembership(trx, conversationId, me);
  if (!membership) throw new AppError('NOT_FOUND', NOT_FOUND);
  assertAdmin(membership.role);
}

async function lockConversation(trx: Transaction<DB>, conversationId: string, now: number) {
  await trx
    .updateTable('conversations')
    .set({ updated_at: now })
    .where('id', '=', conversationId)
    .execute();
}

function assertAdmin(role: string): void {
  if (!ADMINS.includes(role)) throw new AppError('FORBIDDEN', 'Only admins do this');
}

/** Either side blocking the other ends a direct conversation's use (not told which side). */
export async function blockedBetween(ctx: Context, a: string, b: string): Promise<boolean> {
  return rel.eitherBlocked(ctx.ports.db, a, b);
}

async function describe(ctx: Context, conversationId: string, me: string) {
  const { conversation, membership } = await requireMember(ctx, conversationId, me);
  return repo.toConversation(conversation, membership);
}

/**
 * The one direct conversation with `userId`: created on first use, the same one afterwards. The
 * key and the members are made from the ids as stored: MySQL finds a user by an id in any case,
 * and a key made from the id as given would be another pair's (or, for my own id, a
 * conversation with myself).
 */
export async function openDirect(ctx: Context, me: string, userId: string) {
  const db = ctx.ports.db;
  const peer = (await users.findUserById(db, userId))?.id;
  if (!peer) throw new AppError('NOT_FOUND', 'No such user');
  if (peer === me) throw new AppError('BAD_REQUEST', 'A direct conversation needs someone else');
  if (await blockedBetween(ctx, me, peer))
    throw new AppError('FORBIDDEN', 'You cannot message this user');
  const directKey = repo.directKeyOf(me, peer);
  for (let attempt = 1; ; attempt++) {
    const existing = await db
      .selectFrom('conversations')
      .select('id')
      .where('direct_key', '=', directKey)
      .executeTakeFirst();
    if (existing) return describe(ctx, existing.id, me);
    const id = newId();
    try {
      await createConversation(
        ctx,
        { id, kind: 'direct', direct_key: directKey, created_by: me },
        new Map([
          [me, 'member'],
          [peer, 'member'],
        ]),
      );
      return describe(ctx, id, me);
    } catch (err) {
      if (!isUniqueViolation(err)) throw err;
      // Both opened it at once: the other insert won, so the next look finds it. A violation
      // again is no such race (the winner was committed, and a look finds it): a fault of ours
      // that trying again would not mend, so INTERNAL (logged with the cause), not a CONFLICT
      // that tells the client to retry.
      if (attempt === 2)
        throw new AppError('INTERNAL_SERVER_ERROR', 'Could not open the conversation', {
          cause: err,
        });
    }
  }
}

/**
 * Inserts a conversation with its members (and roles) and tells each of them with
 * `conversation.joined`, in one transaction, then wakes them.
 */
async function createConversation(
  ctx: Context,
  row: Pick<
    Insertable<ConversationsTable>,
    'id' | 'kind' | 'direct_key' | 'title' | 'description' | 'created_by'
  >,
  roles: Map<string, TMemberRole>,
): Promise<void> {
  const now = ctx.ports.clock.now();
  const members = [...roles.keys()];
  await ctx.ports.db.transaction().execute(async (trx) => {
    await trx
      .insertInto('conversations')
      .values({ ...row, member_count: members.length, created_at: now, updated_at: now })
      .execute();
    await trx
      .insertInto('conversation_members')
      .values(members.map((u) => memberRow(row.id, u, roles.get(u)!, now)))
      .execute();
    const conversation = (await repo.findConversation(trx, row.id))!;
    await recordEvents(
      trx,
      members,
      (u) => ({
        type: 'conversation.joined',
        conversation: repo.toConversation(conversation, { user_id: u, role: roles.get(u)! }),
      }),
      now,
    );
  });
  await wake(ctx.ports, members);
}

function memberRow(conversationId: string, userId: string, role: TMemberRole, now: number) {
  return { conversation_id: conversationId, user_id: userId, role, joined_at: now };
}

/**
 * Others may be added only when they are my contacts: nobody can be pulled into a group by a
 * stranger. Unknown ids, non-contacts and users who blocked me are refused alike.
 */
async function assertAddable(
  db: Kysely<DB> | Transaction<DB>,
  me: string,
  userIds: string[],
): Promise<void> {
  if (userIds.length === 0) return;
  const { contacts, blockedMe } = await rel.relationsTo(db, me, userIds);
  if (userIds.some((id) => !contacts.has(id) || blockedMe.has(id)))
    throw new AppError('FORBIDDEN', 'You can only add your contacts');
}

export async function createGroup(
  ctx: Context,
  me: string,
  input: { kind: 'group' | 'channel'; title: string; description?: string; memberIds: string[] },
): Promise<TConversation> {
  const others = [...new Set(input.memberIds)].filter((id) => id !== me);
  if (others.length + 1 > ctx.settings.messaging.groupMemberCap)
    throw new AppError('BAD_REQUEST', 'Too many members');
  await assertAddable(ctx.ports.db, me, others);
  const id = newId();
  await createConversation(
    ctx,
    {
      id,
      kind: input.kind,
      title: input.title,
      description: input.description || null,
      created_by: me,
    },
    new Map<string, TMemberRole>([[me, 'owner'], ...others.map((u) => [u, 'member'] as const)]),
  );
  return describe(ctx, id, me);
}

export async function listConversations(ctx: Context, me: string): Promise<TConversation[]> {
  const rows = await repo.listMine(ctx.ports.db, me);
  return rows.map((r) => repo.toConversation(r, { user_id: me, role: r.my_role }));
}

export const getConversation = describe;

/**
 * The members and where each has got to: a cold start's "seen by" (receipts reach only the
 * senders whose messages they pass, and only while streamed). A position is shown as a receipt
 * would show it: none (null) between two people of whom one blocked the other, as no receipt
 * passes between them; the read position null for a member who does not share read receipts,
 * except to them.
 */
export async function listMembers(ctx: Context, me: string, conversationId: string) {
  await requireMember(ctx, conversationId, me);
  const [rows, blocked] = await Promise.all([
    repo.listMembers(ctx.ports.db, conversationId),
    rel.blockedEitherWayWith(ctx.ports.db, me),
  ]);
  return rows.map((r) => {
    const shown = !blocked.has(r.user_id);
    return {
      userId: r.user_id,
      role: r.role as TMemberRole,
      joinedAt: new Date(Number(r.joined_at)).toISOString(),
      deliveredSeq: shown ? Number(r.delivered_seq) : null,
      readSeq:
        shown && (r.user_id === me || r.privacy_read_receipts !== 0) ? Number(r.read_seq) : null,
    };
  });
}

/** Admins add their contacts; the newcomers see messages from now on, not the history. */
export async function addMembers(
  ctx: Context,
  me: string,
  conversationId: string,
  userIds: string[],
): Promise<TConversation> {
  const { conversation, membership } = await requireMember(ctx, conversationId, me);
  if (conversation.kind === 'direct')
    throw new AppError('BAD_REQUEST', 'Direct conversations have two members');
  if (!ADMINS.includes(membership.role)) throw new AppError('FORBIDDEN', 'Only admins add members');
  const wanted = [...new Set(userIds)];
  await assertAddable(ctx.ports.db, me, wanted);
  // An admin adding someone back lifts the ban their removal put on rejoining by invite.
  const added = await admitMembers(ctx, conversationId, userIds, async (trx) => {
    const mine = await repo.findMembership(trx, conversationId, me);
    if (!mine) throw new AppError('NOT_FOUND', NOT_FOUND);
    assertAdmin(mine.role);
    // Again as of now: someone may have blocked me, or dropped me as a contact, since.
    await assertAddable(trx, me, wanted);
    await trx
      .deleteFrom('conversation_bans')
      .where('conversation_id', '=', conversationId)
      .where('user_id', 'in', userIds)
      .execute();
  });
  if (added.length === 0) return repo.toConversation(conversation, membership);
  return describe(ctx, conversationId, me);
}

/**
 * Adds members in one transaction under the conversation row lock (which orders it against sends
 * and other membership changes, so `joined_seq` and the member list are exact); `first` runs
 * inside it before anything else (an invite spends a use there) and may name the role the
 * newcomers get (default member). Newcomers see messages from now on. Answers who was added.
 */
export async function admitMembers(
  ctx: Context,
  conversationId: string,
  userIds: string[],
  first?: (trx: Transaction<DB>) => Promise<'member' | 'restricted' | void>,
): Promise<string[]> {
  const now = ctx.ports.clock.now();
  const { existing, added } = await ctx.ports.db.transaction().execute(async (trx) => {
    await trx
      .updateTable('conversations')
      .set({ updated_at: now })
      .where('id', '=', conversationId)
      .execute();
    const role = (await first?.(trx)) ?? 'member';
    const current = (await repo.findConversation(trx, conversationId))!;
    const members = await repo.memberIds(trx, conversationId);
    const fresh = [...new Set(userIds)].filter((id) => !members.includes(id));
    if (members.length + fresh.length > ctx.settings.messaging.groupMemberCap)
      throw new AppError('BAD_REQUEST', 'Too many members');
    if (fresh.length === 0) return { existing: members, added: fresh };
    await trx
      .updateTable('conversations')
      .set({ member_count: members.length + fresh.length })
      .where('id', '=', conversationId)
      .execute();
    const lastSeq = Number(current.last_seq);
    // Slow mode's slot comes back with someone who left and rejoins: leaving and joining by a
    // link again would otherwise give a fresh one every time.
    const lastPosts =
      Number(current.slow_mode_seconds) > 0
        ? await repo.lastPostsIn(trx, conversationId, fresh)
        : new Map<string, number>();
    await trx
      .insertInto('conversation_members')
      .values(
        fresh.map((u) => ({
          ...memberRow(conversationId, u, role, now),
          joined_seq: lastSeq,
          delivered_seq: lastSeq,
          read_seq: lastSeq,
          last_post_at: lastPosts.get(u) ?? null,
        })),
      )
      .execute();
    const joined = { ...current, member_count: members.length + fresh.length };
    const memberJoined = (userId: string) =>
      members.map((to) => ({
        userId: to,
        event: { type: 'member.joined' as const, conversationId, userId, role },
      }));
    // The first append reaches every stream concerned, newcomers' and members', so their locks
    // are taken at once in user id order, as every other writer takes them (one append per set
    // took the newcomers' before the members': a send elsewhere to some of both could deadlock
    // with it). The rest follow a newcomer at a time, an insert of at most one row per member.
    const [firstNew, ...rest] = fresh;
    await recordEach(
      trx,
      [
        ...fresh.map((u) => ({
          userId: u,
          event: {
            type: 'conversation.joined' as const,
            conversation: repo.toConversation(joined, { user_id: u, role }),
          },
        })),
        ...memberJoined(firstNew!),
      ],
      now,
    );
    for (const userId of rest) await recordEach(trx, memberJoined(userId), now);
    return { existing: members, added: fresh };
  });
  if (added.length > 0) await wake(ctx.ports, [...existing, ...added]);
  return added;
}

/** Admins of a group or channel (NOT_FOUND for outsiders, FORBIDDEN for members). */
export async function requireAdmin(ctx: Context, conversationId: string, me: string) {
  const found = await requireMember(ctx, conversationId, me);
  if (found.conversation.kind === 'direct')
    throw new AppError('BAD_REQUEST', 'Not for direct conversations');
  if (!ADMINS.includes(found.membership.role))
    throw new AppError('FORBIDDEN', 'Only admins do this');
  return found;
}

/** Tells every member the conversation as they see it now (each with their own role). */
async function announceUpdate(
  ctx: Context,
  trx: Transaction<DB>,
  conversationId: string,
  now: number,
): Promise<string[]> {
  const conversation = (await repo.findConversation(trx, conversationId))!;
  const members = await repo.listMembers(trx, conversationId);
  const roles = new Map(members.map((m) => [m.user_id, m.role]));
  await recordEvents(
    trx,
    members.map((m) => m.user_id),
    (u) => ({
      type: 'conversation.updated',
      conversation: repo.toConversation(conversation, { user_id: u, role: roles.get(u)! }),
    }),
    now,
  );
  return members.map((m) => m.user_id);
}

/**
 * Title, description and slow mode (admins of groups and channels); the disappearing timer
 * (admins, or either person in a direct conversation while neither has blocked the other). It
 * applies to messages sent from now on.
 */
export async function updateConversation(
  ctx: Context,
  me: string,
  input: {
    id: string;
    title?: string;
    description?: string;
    slowModeSeconds?: number;
    disappearSeconds?: number;
  },
): Promise<TConversation> {
  const { conversation, membership } = await requireMember(ctx, input.id, me);
  const direct = conversation.kind === 'direct';
  const roomOnly =
    input.title !== undefined ||
    input.description !== undefined ||
    input.slowModeSeconds !== undefined;
  if (direct && roomOnly)
    throw new AppError('BAD_REQUEST', 'A direct conversation has only a disappearing timer');
  if (!direct) assertAdmin(membership.role);
  const peer = direct ? repo.toConversation(conversation, membership).peerId : null;
  // A timer set across a block would still change the other side's messages.
  if (peer && (await blockedBetween(ctx, me, peer)))
    throw new AppError('FORBIDDEN', 'You cannot message this user');
  const now = ctx.ports.clock.now();
  const members = await ctx.ports.db.transaction().execute(async (trx) => {
    const mine = await lockedMembership(trx, input.id, me, now);
    if (!direct) assertAdmin(mine.role);
    await trx
      .updateTable('conversations')
      .set({
        ...(input.title !== undefined ? { title: input.title } : {}),
        ...(input.description !== undefined ? { description: input.description || null } : {}),
        ...(input.slowModeSeconds !== undefined
          ? { slow_mode_seconds: input.slowModeSeconds }
          : {}),
        ...(input.disappearSeconds !== undefined
          ? { disappear_seconds: input.disappearSeconds }
          : {}),
      })
      .where('id', '=', input.id)
      .execute();
    return announceUpdate(ctx, trx, input.id, now);
  });
  await wake(ctx.ports, members);
  if (input.slowModeSeconds !== undefined || input.disappearSeconds !== undefined)
    await announcePostingChanged(ctx.ports, [input.id]);
  return describe(ctx, input.id, me);
}

type RoleChange = [userId: string, role: TMemberRole];

/**
 * Roles below owner. The owner sets anyone's; an admin may only move members and restricted
 * members between those two roles.
 */
export async function setRole(
  ctx: Context,
  me: string,
  input: { id: string; userId: string; role: 'admin' | 'member' | 'restricted' },
): Promise<void> {
  await requireAdmin(ctx, input.id, me);
  await changeRoles(ctx, input.id, me, async (trx, mine) => {
    assertAdmin(mine.role);
    const target = await repo.findMembership(trx, input.id, input.userId);
    if (!target) throw new AppError('NOT_FOUND', 'No such member');
    if (target.role === 'owner') throw new AppError('FORBIDDEN', 'Transfer ownership instead');
    const ownerOnly = input.role === 'admin' || target.role === 'admin';
    if (ownerOnly && mine.role !== 'owner')
      throw new AppError('FORBIDDEN', 'Only the owner manages admins');
    return target.role === input.role ? [] : [[input.userId, input.role]];
  });
}

/** The owner hands the conversation over to a member and becomes an admin. */
export async function transferOwnership(
  ctx: Context,
  me: string,
  input: { id: string; userId: string },
): Promise<void> {
  await requireAdmin(ctx, input.id, me);
  await changeRoles(ctx, input.id, me, async (trx, mine) => {
    if (mine.role !== 'owner') throw new AppError('FORBIDDEN', 'Only the owner transfers');
    if (input.userId === me) return [];
    if (!(await repo.findMembership(trx, input.id, input.userId)))
      throw new AppError('NOT_FOUND', 'No such member');
    return [
      [input.userId, 'owner'],
      [me, 'admin'],
    ];
  });
}

/**
 * Role changes decided under the conversation row lock by `decide`, from my membership and the
 * target's as they are then: two transfers at once, or an admin acting on someone who is
 * becoming owner, take turns instead of leaving two owners or none.
 */
async function changeRoles(
  ctx: Context,
  conversationId: string,
  me: string,
  decide: (trx: Transaction<DB>, mine: repo.MemberRow) => Promise<RoleChange[]>,
): Promise<void> {
  const now = ctx.ports.clock.now();
  const members = await ctx.ports.db.transaction().execute(async (trx) => {
    const changes = await decide(trx, await lockedMembership(trx, conversationId, me, now));
    if (changes.length === 0) return [];
    await applyRoles(trx, conversationId, changes, now);
    return repo.memberIds(trx, conversationId);
  });
  if (members.length > 0) await wake(ctx.ports, members);
}

/** Writes role changes and tells every member, inside the caller's locked transaction. */
async function applyRoles(
  trx: Transaction<DB>,
  conversationId: string,
  changes: RoleChange[],
  now: number,
): Promise<void> {
  for (const [userId, role] of changes) {
    await trx
      .updateTable('conversation_members')
      .set({ role })
      .where('conversation_id', '=', conversationId)
      .where('user_id', '=', userId)
      .execute();
  }
  const everyone = await repo.memberIds(trx, conversationId);
  for (const [userId, role] of changes)
    await recordEvents(trx, everyone, { type: 'member.role', conversationId, userId, role }, now);
}

/** The owner deletes a group or channel for everyone: members are told, then it is gone. */
export async function deleteConversation(ctx: Context, me: string, id: string): Promise<void> {
  const { conversation, membership } = await requireAdmin(ctx, id, me);
  if (membership.role !== 'owner') throw new AppError('FORBIDDEN', 'Only the owner deletes');
  const now = ctx.ports.clock.now();
  const members = await ctx.ports.db.transaction().execute(async (trx) => {
    // Under the lock, so nobody joins unseen between the member list and the delete.
    const mine = await lockedMembership(trx, id, me, now);
    if (mine.role !== 'owner') throw new AppError('FORBIDDEN', 'Only the owner deletes');
    const everyone = await repo.memberIds(trx, id);
    await recordEvents(
      trx,
      everyone,
      { type: 'conversation.left', conversationId: id, reason: 'deleted' },
      now,
    );
    // Members, messages, reactions, pins and invites go with it (foreign keys cascade).
    await trx.deleteFrom('conversations').where('id', '=', id).execute();
    return everyone;
  });
  if (conversation.avatar_key) await deleteBlobQuietly(ctx, conversation.avatar_key);
  await wake(ctx.ports, members);
  // Cached posting contexts would let sends reach the write, which then finds it gone.
  await announcePostingChanged(ctx.ports, [id]);
}

/**
 * Removes `userId` (an admin removing a member, or anyone leaving). The owner cannot leave while
 * others remain (transfer first); an admin cannot remove the owner or, unless owner, another
 * admin. Once out, the user's stream gets nothing more from this conversation. Everything is
 * decided again under the conversation row lock, from the roles and members as they are then.
 */
export async function removeMember(
  ctx: Context,
  me: string,
  conversationId: string,
  userId: string,
): Promise<void> {
  const { conversation } = await requireMember(ctx, conversationId, me);
  if (conversation.kind === 'direct')
    throw new AppError('BAD_REQUEST', 'Direct conversations have two members');
  const leaving = userId === me;
  const now = ctx.ports.clock.now();
  const { rest, avatarKey } = await ctx.ports.db.transaction().execute(async (trx) => {
    const mine = await lockedMembership(trx, conversationId, me, now);
    const target = leaving ? mine : await repo.findMembership(trx, conversationId, userId);
    if (!target) throw new AppError('NOT_FOUND', 'No such member');
    const others = (await repo.memberIds(trx, conversationId)).filter((id) => id !== userId);
    if (!leaving) {
      if (!ADMINS.includes(mine.role))
        throw new AppError('FORBIDDEN', 'Only admins remove members');
      if (target.role === 'owner' || (target.role === 'admin' && mine.role !== 'owner'))
        throw new AppError('FORBIDDEN', 'You cannot remove this member');
    } else if (target.role === 'owner' && others.length > 0) {
      throw new AppError('CONFLICT', 'Transfer ownership before leaving');
    }
    const avatarKey = await dropMember(trx, conversationId, target, others, now, {
      reason: leaving ? 'left' : 'removed',
      by: me,
    });
    return { rest: others, avatarKey };
  });
  if (avatarKey) await deleteBlobQuietly(ctx, avatarKey);
  await wake(ctx.ports, [userId, ...rest]);
}

/**
 * Takes one member out, inside a transaction holding the conversation row lock: the count, the
 * row, the events to them and to `others` (everyone else), and the conversation itself when
 * nobody is left. Out is out for good only when an admin removed them: a removed member may
 * not rejoin by invite, and a restricted member who leaves comes back restricted (without
 * that, leaving and rejoining by the group's link would lift the restriction). Answers the gone
 * conversation's picture, for the caller to delete once committed (the public URL would serve
 * it on), else null.
 */
async function dropMember(
  trx: Transaction<DB>,
  conversationId: string,
  member: repo.MemberRow,
  others: string[],
  now: number,
  how: { reason: 'left' | 'removed'; by: string },
): Promise<string | null> {
  const userId = member.user_id;
  await trx
    .updateTable('conversations')
    .set((eb) => ({ member_count: eb('member_count', '-', 1) }))
    .where('id', '=', conversationId)
    .execute();
  await trx
    .deleteFrom('conversation_members')
    .where('conversation_id', '=', conversationId)
    .where('user_id', '=', userId)
    .execute();
  const rejoinAs =
    how.reason === 'removed' ? null : member.role === 'restricted' ? 'restricted' : undefined;
  if (rejoinAs !== undefined)
    // Every way back in (an admin's add, an invite) deletes the row, so none exists here.
    await trx
      .insertInto('conversation_bans')
      .values({
        conversation_id: conversationId,
        user_id: userId,
        banned_by: how.by,
        banned_at: now,
        rejoin_as: rejoinAs,
      })
      .execute();
  await recordEvents(
    trx,
    [userId],
    { type: 'conversation.left', conversationId, reason: how.reason },
    now,
  );
  await recordEvents(trx, others, { type: 'member.left', conversationId, userId }, now);
  if (others.length > 0) return null;
  // Read under the row lock: a picture swapped in before it is the one to delete.
  const gone = await repo.findConversation(trx, conversationId);
  await trx.deleteFrom('conversations').where('id', '=', conversationId).execute();
  return gone?.avatar_key ?? null;
}

const SUCCESSION: readonly string[] = ['admin', 'member', 'restricted'];

/**
 * A deleted account leaves every conversation, inside the deletion's transaction: the members
 * are told (`member.left`) and counted right, and a group or channel it owned passes to its
 * longest-standing admin, else member, else restricted member (`member.role`), as Signal and
 * WhatsApp hand a group on. Without this the rows went by cascade, silently, and an owned
 * group was left with nobody who could manage or delete it. Answers whom to wake, and the
 * pictures of the conversations that went with the account (nobody left), to delete once
 * committed.
 */
export async function leaveEverything(
  trx: Transaction<DB>,
  userId: string,
  now: number,
): Promise<{ woken: string[]; avatarKeys: string[] }> {
  const conversationIds = (
    await trx
      .selectFrom('conversation_members')
      .select('conversation_id')
      .where('user_id', '=', userId)
      .orderBy('conversation_id') // one lock order for every deletion: no deadlocks between them
      .execute()
  ).map((r) => r.conversation_id);
  const woken = new Set<string>();
  const avatarKeys: string[] = [];
  for (const conversationId of conversationIds) {
    await lockConversation(trx, conversationId, now);
    const member = await repo.findMembership(trx, conversationId, userId);
    if (!member) continue; // left meanwhile
    const rest = (await repo.listMembers(trx, conversationId)).filter((m) => m.user_id !== userId);
    const heir = member.role === 'owner' ? successorOf(rest) : undefined;
    if (heir) await applyRoles(trx, conversationId, [[heir, 'owner']], now);
    const others = rest.map((m) => m.user_id);
    const how = { reason: 'left', by: userId } as const;
    const avatarKey = await dropMember(trx, conversationId, member, others, now, how);
    if (avatarKey) avatarKeys.push(avatarKey);
    for (const id of others) woken.add(id);
  }
  return { woken: [...woken], avatarKeys };
}

/** `members` come oldest first (listMembers' order). */
function successorOf(members: { user_id: string; role: string }[]): string | undefined {
  for (const role of SUCCESSION) {
    const found = members.find((m) => m.role === role);
    if (found) return found.user_id;
  }
  return undefined;
}
