import type { TMe } from '@mvp/contracts';
import { isUniqueViolation } from '@mvp/db';
import type { Context } from '../../context';
import { AppError } from '../../errors/AppError';
import { enforceLimit } from '../../rateLimit';
import { assertPasswordAllowed } from '../auth/auth.service';
import { displayNameContext, phoneContext } from '../auth/identity';
import * as users from '../auth/users.repo';
import { avatarUrlOf } from '../users/profiles';
import { revokeByIds } from '../sessions/sessions.service';
import { deleteAccount } from './accountDeletion';

async function requireUser(ctx: Context, userId: string): Promise<users.UserRow> {
  const user = await users.findUserById(ctx.ports.db, userId);
  if (!user) throw new AppError('UNAUTHORIZED', 'Session ended');
  return user;
}

function toMe(ctx: Context, user: users.UserRow): TMe {
  const { cipher } = ctx.ports;
  return {
    id: user.id,
    uniqueId: user.unique_id,
    username: user.username,
    phone: user.phone_ciphertext
      ? cipher.decrypt(user.phone_ciphertext, phoneContext(user.id))
      : null,
    displayName: cipher.decrypt(user.display_name_ciphertext, displayNameContext(user.id)),
    bio: user.bio,
    avatarUrl: avatarUrlOf(user),
    requireOtpLogin: user.require_otp_login === 1,
    createdAt: new Date(user.created_at).toISOString(),
  };
}

export async function getMe(ctx: Context, userId: string): Promise<TMe> {
  return toMe(ctx, await requireUser(ctx, userId));
}

export async function updateMe(
  ctx: Context,
  userId: string,
  input: {
    displayName?: string;
    username?: string;
    bio?: string;
    requireOtpLogin?: boolean;
    currentPassword?: string;
  },
): Promise<TMe> {
  const user = await requireUser(ctx, userId);
  const changes: Partial<users.UserRow> = { updated_at: ctx.ports.clock.now() };
  if (input.displayName !== undefined) {
    changes.display_name_ciphertext = ctx.ports.cipher.encrypt(
      input.displayName,
      displayNameContext(userId),
    );
  }
  if (input.username !== undefined && input.username !== user.username)
    changes.username = input.username;
  if (input.bio !== undefined) changes.bio = input.bio || null;
  if (input.requireOtpLogin !== undefined) {
    if (input.requireOtpLogin && !user.phone_ciphertext) {
      throw new AppError('BAD_REQUEST', 'A verified phone number is needed for sign-in codes');
    }
    // Off only with the password: a stolen access token must not strip the second factor (the
    // thief could then sign in later with a phished password alone).
    if (!input.requireOtpLogin && user.require_otp_login) {
      if (input.currentPassword === undefined)
        throw new AppError('FORBIDDEN', 'Turning sign-in codes off needs your password');
      await assertPassword(ctx, user, input.currentPassword);
    }
    changes.require_otp_login = input.requireOtpLogin ? 1 : 0;
  }
  try {
    await users.updateUser(ctx.ports.db, userId, changes);
  } catch (err) {
    if (isUniqueViolation(err)) throw new AppError('CONFLICT', 'This username is taken');
    throw err;
  }
  return getMe(ctx, userId);
}

/** Re-authenticates with the current password, limited per account like a login. */
async function assertPassword(ctx: Context, user: users.UserRow, password: string): Promise<void> {
  await enforceLimit(ctx, 'reauth-account', ctx.settings.auth.limits.loginAccount, user.id);
  if (!(await ctx.ports.passwords.verify(user.password_hash, password))) {
    throw new AppError('FORBIDDEN', 'Wrong password');
  }
}

export async function changePassword(
  ctx: Context,
  auth: { userId: string; sessionId: string },
  input: { currentPassword: string; newPassword: string; revokeOtherSessions: boolean },
): Promise<{ revoked: number }> {
  const user = await requireUser(ctx, auth.userId);
  await assertPassword(ctx, user, input.currentPassword);
  assertPasswordAllowed(input.newPassword);
  const hash = await ctx.ports.passwords.hash(input.newPassword);
  await users.updateUser(ctx.ports.db, user.id, {
    password_hash: hash,
    updated_at: ctx.ports.clock.now(),
  });
  if (!input.revokeOtherSessions) return { revoked: 0 };
  const ids = await revokeByIds(ctx, user.id, { except: auth.sessionId }, 'password_changed');
  return { revoked: ids.length };
}

/** Deletes the account and with it (cascade) its personal data, devices, sessions and avatar. */
export async function deleteMe(ctx: Context, userId: string, password: string): Promise<void> {
  const user = await requireUser(ctx, userId);
  await assertPassword(ctx, user, password);
  if (!(await deleteAccount(ctx, userId))) {
    // Gone meanwhile (a second deletion won), or an avatar upload kept racing this one.
    if (await users.userExists(ctx.ports.db, userId)) {
      throw new AppError('CONFLICT', 'Your account changed meanwhile; try again');
    }
    return;
  }
  ctx.log.info({ event: 'account_deleted', userId }, 'account deleted by its owner');
}
