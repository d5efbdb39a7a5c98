import { randomBytes } from 'node:crypto';
import type { Selectable } from 'kysely';
import type { InvitesTable } from '@mvp/db';
import type { Context } from '../../context';
import { AppError } from '../../errors/AppError';
import { enforceLimit } from '../../rateLimit';
import * as repo from './conversations.repo';
import { admitMembers, getConversation, lockedAdmin, requireAdmin } from './conversations.service';

type InviteRow = Selectable<InvitesTable>;

/** Looking codes up is cheap to try: a budget per account keeps guessing pointless. */
const LOOKUP_LIMIT = { points: 30, durationSeconds: 600 };
/**
 * What one conversation's invites may grow to: codes that still work at once, codes an account
 * makes an hour (revoked and expired ones stay listed), and codes a list shows (newest first).
 * Without them one admin could grow the table, and every other admin's list, without end.
 */
export const MAX_LIVE_INVITES = 100;
const CREATE_LIMIT = { points: 200, durationSeconds: 3600 };
const LISTED_INVITES = 200;
const GONE = 'This invite does not exist or no longer works';

const iso = (ms: number | null) => (ms === null ? null : new Date(Number(ms)).toISOString());

function toInvite(row: InviteRow) {
  return {
    code: row.code,
    conversationId: row.conversation_id,
    expiresAt: iso(row.expires_at),
    maxUses: row.max_uses === null ? null : Number(row.max_uses),
    uses: Number(row.uses),
    revoked: row.revoked_at !== null,
  };
}

const usable = (row: InviteRow, now: number) =>
  row.revoked_at === null &&
  (row.expires_at === null || Number(row.expires_at) > now) &&
  (row.max_uses === null || Number(row.uses) < Number(row.max_uses));

/** An admin makes a code (128 random bits, so unguessable) with an optional expiry and use cap. */
export async function createInvite(
  ctx: Context,
  me: string,
  input: { id: string; expiresInSeconds?: number; maxUses?: number },
) {
  await requireAdmin(ctx, input.id, me);
  await enforceLimit(ctx, 'invite-create', CREATE_LIMIT, me);
  const now = ctx.ports.clock.now();
  const row: InviteRow = {
    code: randomBytes(16).toString('base64url'),
    conversation_id: input.id,
    created_by: me,
    created_at: now,
    expires_at: input.expiresInSeconds ? now + input.expiresInSeconds * 1000 : null,
    max_uses: input.maxUses ?? null,
    uses: 0,
    revoked_at: null,
  };
  await ctx.ports.db.transaction().execute(async (trx) => {
    await lockedAdmin(ctx, trx, input.id, me);
    // Counted under the conversation's lock (lockedAdmin): two at once cannot both pass.
    const { live } = await trx
      .selectFrom('invites')
      .select((eb) => eb.fn.countAll<number>().as('live'))
      .where('conversation_id', '=', input.id)
      .where('revoked_at', 'is', null)
      .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', now)]))
      .where((eb) => eb.or([eb('max_uses', 'is', null), eb('uses', '<', eb.ref('max_uses'))]))
      .executeTakeFirstOrThrow();
    if (Number(live) >= MAX_LIVE_INVITES)
      throw new AppError(
        'CONFLICT',
        `At most ${MAX_LIVE_INVITES} invites work at once: revoke one`,
      );
    await trx.insertInto('invites').values(row).execute();
  });
  return toInvite(row);
}

export async function listInvites(ctx: Context, me: string, conversationId: string) {
  await requireAdmin(ctx, conversationId, me);
  const rows = await ctx.ports.db
    .selectFrom('invites')
    .selectAll()
    .where('conversation_id', '=', conversationId)
    .orderBy('created_at', 'desc')
    .limit(LISTED_INVITES)
    .execute();
  return rows.map(toInvite);
}

/** An admin of the invite's conversation revokes it; anyone else finds no such invite. */
export async function revokeInvite(ctx: Context, me: string, code: string): Promise<void> {
  const row = await ctx.ports.db
    .selectFrom('invites')
    .selectAll()
    .where('code', '=', code)
    .executeTakeFirst();
  const admin = row && (await repo.findMembership(ctx.ports.db, row.conversation_id, me));
  if (!row || !admin || !['owner', 'admin'].includes(admin.role))
    throw new AppError('NOT_FOUND', 'No such invite');
  await ctx.ports.db.transaction().execute(async (trx) => {
    await lockedAdmin(ctx, trx, row.conversation_id, me);
    await trx
      .updateTable('invites')
      .set({ revoked_at: ctx.ports.clock.now() })
      .where('code', '=', code)
      .execute();
  });
}

async function findInvite(ctx: Context, me: string, code: string): Promise<InviteRow> {
  await enforceLimit(ctx, 'invite-lookup', LOOKUP_LIMIT, me);
  const row = await ctx.ports.db
    .selectFrom('invites')
    .selectAll()
    .where('code', '=', code)
    .executeTakeFirst();
  if (!row) throw new AppError('NOT_FOUND', GONE);
  return row;
}

async function usableInvite(ctx: Context, me: string, code: string): Promise<InviteRow> {
  const row = await findInvite(ctx, me, code);
  if (!usable(row, ctx.ports.clock.now())) throw new AppError('NOT_FOUND', GONE);
  return row;
}

/** What a code leads to, without joining: enough to decide (no members, no messages). */
export async function previewInvite(ctx: Context, me: string, code: string) {
  const row = await usableInvite(ctx, me, code);
  const conversation = (await repo.findConversation(ctx.ports.db, row.conversation_id))!;
  return {
    kind: conversation.kind as 'group' | 'channel',
    title: conversation.title,
    description: conversation.description,
    memberCount: Number(conversation.member_count),
  };
}

/**
 * Joins by code. The use is spent inside the joining transaction with a conditional update, so
 * concurrent joins never exceed `maxUses`. Joining again answers the conversation, spending
 * nothing (also when two of my joins race: the second finds me a member under the lock). A
 * member an admin removed may not rejoin this way until an admin adds them back; one who left
 * while restricted comes back restricted.
 */
export async function joinByInvite(ctx: Context, me: string, code: string) {
  const row = await findInvite(ctx, me, code);
  const conversationId = row.conversation_id;
  if (await repo.findMembership(ctx.ports.db, conversationId, me))
    return getConversation(ctx, conversationId, me);
  if (!usable(row, ctx.ports.clock.now())) throw new AppError('NOT_FOUND', GONE);
  await admitMembers(ctx, conversationId, [me], async (trx) => {
    if (await repo.findMembership(trx, conversationId, me)) return;
    const banned = await trx
      .selectFrom('conversation_bans')
      .select('rejoin_as')
      .where('conversation_id', '=', conversationId)
      .where('user_id', '=', me)
      .executeTakeFirst();
    if (banned && banned.rejoin_as === null)
      throw new AppError('FORBIDDEN', 'An admin removed you; only an admin can add you back');
    const now = ctx.ports.clock.now();
    const spent = await trx
      .updateTable('invites')
      .set((eb) => ({ uses: eb('uses', '+', 1) }))
      .where('code', '=', code)
      .where('revoked_at', 'is', null)
      .where((eb) =>
        eb.and([
          eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', now)]),
          eb.or([eb('max_uses', 'is', null), eb('uses', '<', eb.ref('max_uses'))]),
        ]),
      )
      .executeTakeFirst();
    if (Number(spent.numUpdatedRows) === 0) throw new AppError('NOT_FOUND', GONE);
    if (!banned) return 'member';
    // The restriction is carried by the role again from here.
    await trx
      .deleteFrom('conversation_bans')
      .where('conversation_id', '=', conversationId)
      .where('user_id', '=', me)
      .execute();
    return 'restricted';
  });
  return getConversation(ctx, conversationId, me);
}
