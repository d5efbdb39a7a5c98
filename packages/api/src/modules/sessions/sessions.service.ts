import type { Kysely, Transaction } from 'kysely';
import { newId } from '../../ids';
import type { DB } from '@mvp/db';
import type { TAuthTokens, TDevice, TSession } from '@mvp/contracts';
import type { Context } from '../../context';
import { AppError } from '../../errors/AppError';
import { locking } from '../../locking';
import { enforceLimit } from '../../rateLimit';
import { hashRefreshToken, newRefreshToken } from '../../security';
import { issueDeviceCookie } from '../../security/deviceCookies';
import type { UserRow } from '../auth/users.repo';
import { endCallsOfDevices } from '../calls/calls.service';
import { announceDevicesGone } from '../keys/keys.service';
import * as repo from './sessions.repo';

/** Bus channel on which revocations travel, so every instance closes the sockets it holds. */
export const SESSION_REVOKED_CHANNEL = 'auth:session-revoked';
export type SessionRevokedMessage = { sessionIds: string[] };

const iso = (ms: number) => new Date(ms).toISOString();

function toAuthUser(user: UserRow): TAuthTokens['user'] {
  return { id: user.id, uniqueId: user.unique_id, username: user.username };
}

async function issueTokens(
  ctx: Context,
  db: Kysely<DB> | Transaction<DB>,
  user: UserRow,
  sessionId: string,
  sessionExpiresAt: number,
  parentHash: string | null,
): Promise<TAuthTokens> {
  const now = ctx.ports.clock.now();
  const refreshToken = newRefreshToken();
  await repo.insertRefreshToken(db, {
    token_hash: hashRefreshToken(refreshToken),
    session_id: sessionId,
    created_at: now,
    expires_at: Math.min(now + ctx.settings.auth.refreshIdleMs, sessionExpiresAt),
    parent_hash: parentHash,
  });
  const access = await ctx.ports.tokens.sign({ userId: user.id, sessionId });
  return {
    status: 'ok',
    accessToken: access.token,
    refreshToken,
    expiresAt: iso(access.expiresAt),
    sessionId,
    user: toAuthUser(user),
    deviceCookie: issueDeviceCookie(ctx.ports.cipher, user, now),
  };
}

/** A login: a new device record, a session bound to it, and the first token pair. */
export async function startSession(
  ctx: Context,
  db: Kysely<DB> | Transaction<DB>,
  user: UserRow,
  device: TDevice,
): Promise<TAuthTokens> {
  const now = ctx.ports.clock.now();
  const deviceId = newId();
  const sessionId = newId();
  const expiresAt = now + ctx.settings.auth.refreshAbsoluteMs;
  await repo.insertDevice(db, {
    id: deviceId,
    user_id: user.id,
    name: device.name,
    platform: device.platform,
    created_at: now,
    last_seen_at: now,
  });
  await repo.insertSession(db, {
    id: sessionId,
    user_id: user.id,
    device_id: deviceId,
    created_at: now,
    last_seen_at: now,
    expires_at: expiresAt,
    revoked_at: null,
    revoked_reason: null,
  });
  return issueTokens(ctx, db, user, sessionId, expiresAt, null);
}

/**
 * A refresh token presented again this soon after its use is the client's own retry, not a
 * leak: the answer to the first use was lost (a dropped connection on a phone), or two tabs
 * sharing one store refreshed at once. It gets a fresh pair too instead of ending the session, as
 * Auth0's and Okta's reuse intervals do. Later than this, reuse revokes the family. A thief's
 * replay within it looks the same, so it is caught later: the client goes on with one of the
 * sibling tokens so minted, and a second sibling in use revokes the family.
 */
const REUSE_GRACE_MS = 30_000;

/**
 * Rotates a refresh token. Each is single use; presenting one that was already used (after
 * REUSE_GRACE_MS), or one whose sibling was used, means it leaked, so the whole family (the
 * session) is revoked.
 */
export async function refreshSession(ctx: Context, refreshToken: string): Promise<TAuthTokens> {
  const now = ctx.ports.clock.now();
  const tokenHash = hashRefreshToken(refreshToken);
  const ended = new AppError('UNAUTHORIZED', 'Session ended, sign in again');
  const revokeFamily = async (row: repo.RefreshRow) => {
    ctx.log.warn(
      { event: 'refresh_token_reuse', sessionId: row.session_id, userId: row.user_id },
      'security: refresh token reused; session revoked',
    );
    await revokeByIds(ctx, row.user_id, { only: row.session_id }, 'refresh_reuse');
  };

  const row = await repo.findRefreshToken(ctx.ports.db, tokenHash);
  // Dead tokens are answered before the account's budget is spent: anyone holding a signed-out
  // session's token could otherwise spend it all, and the account's live devices, refused their
  // refreshes, would be signed out. (The per-address budget still limits floods.)
  if (!row || row.revoked_at !== null || row.session_expires_at <= now) throw ended;
  // A leak revokes even when the budget is spent (by the leak's holder, say).
  const reusedLate = row.used_at !== null && now - Number(row.used_at) > REUSE_GRACE_MS;
  if (reusedLate || (await repo.siblingUsed(ctx.ports.db, row))) {
    await revokeFamily(row);
    throw ended;
  }
  if (row.expires_at <= now) throw ended;
  await enforceLimit(ctx, 'refresh-account', ctx.settings.auth.limits.refreshAccount, row.user_id);

  const result = await ctx.ports.db.transaction().execute(async (trx) => {
    // Refreshes of one session take turns under its row lock (on MySQL; SQLite runs one
    // transaction at a time), so of two siblings presented at once the second finds the first
    // used here. Read after the lock: on MySQL the snapshot starts at the first plain read.
    await locking(
      ctx,
      trx.selectFrom('sessions').select('id').where('id', '=', row.session_id),
    ).execute();
    if (await repo.siblingUsed(trx, row)) return 'forked' as const;
    // Not marked: used a moment ago (above, or by a refresh racing this one): within the grace.
    await repo.markRefreshUsed(trx, tokenHash, now);
    await repo.touchSession(trx, row.session_id, row.device_id, now);
    const user = await trx
      .selectFrom('users')
      .selectAll()
      .where('id', '=', row.user_id)
      .executeTakeFirst();
    if (!user) return null;
    await trx.updateTable('users').set({ last_active_at: now }).where('id', '=', user.id).execute();
    return issueTokens(ctx, trx, user, row.session_id, row.session_expires_at, tokenHash);
  });
  if (result === 'forked') {
    await revokeFamily(row);
    throw ended;
  }
  if (!result) throw ended; // the account is gone
  return result;
}

/**
 * Revokes sessions, drops them from this instance's cache and tells every instance; their
 * devices' calls end (endCallsOfDevices). That last is best effort: the sessions are revoked
 * whatever it meets, and the calls' timeouts end what it could not.
 */
export async function revokeByIds(
  ctx: Context,
  userId: string,
  filter: { only?: string; except?: string },
  reason: string,
): Promise<string[]> {
  const revoked = await repo.revokeSessions(
    ctx.ports.db,
    { userId, ...filter },
    reason,
    ctx.ports.clock.now(),
  );
  const ids = revoked.map((r) => r.id);
  if (ids.length > 0) {
    await announceRevoked(ctx, ids);
    await announceDevicesGone(ctx, userId, ids);
    await endCallsOfDevices(
      ctx,
      userId,
      revoked.map((r) => r.device_id),
    ).catch((err: unknown) =>
      ctx.log.warn(
        { err, event: 'revoked_calls_not_ended' },
        'could not end a revoked device’s calls',
      ),
    );
  }
  return ids;
}

export async function announceRevoked(ctx: Context, sessionIds: string[]): Promise<void> {
  for (const id of sessionIds) ctx.ports.sessions.forget(id);
  const message: SessionRevokedMessage = { sessionIds };
  await ctx.ports.bus.publish(SESSION_REVOKED_CHANNEL, message);
}

export async function listSessions(
  ctx: Context,
  userId: string,
  currentSessionId: string,
): Promise<TSession[]> {
  const rows = await repo.listLiveSessions(ctx.ports.db, userId, ctx.ports.clock.now());
  return rows.map((r) => ({
    id: r.id,
    current: r.id === currentSessionId,
    device: {
      id: r.device_id,
      name: r.device_name,
      platform: r.device_platform as TSession['device']['platform'],
    },
    createdAt: iso(r.created_at),
    lastSeenAt: iso(r.last_seen_at),
    expiresAt: iso(r.expires_at),
  }));
}

export async function revokeSession(
  ctx: Context,
  userId: string,
  sessionId: string,
): Promise<void> {
  const ids = await revokeByIds(ctx, userId, { only: sessionId }, 'revoked');
  // Someone else's session id looks exactly like one that does not exist.
  if (ids.length === 0) throw new AppError('NOT_FOUND', 'No such session');
}
