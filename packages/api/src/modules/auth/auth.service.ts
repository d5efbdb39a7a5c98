import { newId } from '../../ids';
import { isUniqueViolation } from '@mvp/db';
import type { TAuthResult, TAuthTokens, TDevice, TLoginInput } from '@mvp/contracts';
import type { Context } from '../../context';
import { AppError } from '../../errors/AppError';
import { enforceLimit } from '../../rateLimit';
import { passwordProblem } from '../../security';
import { trustedDeviceCookie } from '../../security/deviceCookies';
import { revokeByIds, startSession } from '../sessions/sessions.service';
import { displayNameContext, newUniqueId, parseIdentifier, phoneContext } from './identity';
import { assertNotBackedOff, clearFailures, recordFailure } from './loginBackoff';
import {
  consumeChallenge,
  openChallenge,
  resendChallenge,
  type PendingRegistration,
} from './otpChallenges';
import * as users from './users.repo';

const WRONG_CREDENTIALS = 'Wrong identifier or password';

export function assertPasswordAllowed(password: string): void {
  const problem = passwordProblem(password);
  if (problem === 'too_common') {
    throw new AppError(
      'BAD_REQUEST',
      'This password is among the most common ones; choose another',
    );
  }
  if (problem) throw new AppError('BAD_REQUEST', 'Use 8 to 128 characters');
}

/** Inserts a user, retrying the rare unique-id collision; a taken username or phone is CONFLICT. */
async function createUser(
  ctx: Context,
  input: {
    username: string | null;
    phone: string | null;
    passwordHash: string;
    displayName: string;
  },
): Promise<users.UserRow> {
  const now = ctx.ports.clock.now();
  const id = newId();
  const { cipher } = ctx.ports;
  for (let attempt = 0; ; attempt++) {
    const row: users.UserRow = {
      id,
      unique_id: newUniqueId(),
      username: input.username,
      phone_ciphertext: input.phone ? cipher.encrypt(input.phone, phoneContext(id)) : null,
      phone_index: input.phone ? cipher.blindIndex(input.phone, 'phone') : null,
      display_name_ciphertext: cipher.encrypt(input.displayName, displayNameContext(id)),
      password_hash: input.passwordHash,
      require_otp_login: 0,
      created_at: now,
      updated_at: now,
      last_active_at: now,
      bio: null,
      avatar_key: null,
      privacy_find_by_phone: 'everyone',
      privacy_presence: 'contacts',
      privacy_requests: 'everyone',
      last_seen_at: null,
      privacy_read_receipts: 1,
    };
    try {
      await ctx.ports.db.transaction().execute((trx) => users.insertUser(trx, row));
      return row;
    } catch (err) {
      if (!isUniqueViolation(err)) throw err;
      if (input.username && (await users.usernameTaken(ctx.ports.db, input.username))) {
        throw new AppError('CONFLICT', 'This username is taken');
      }
      if (
        row.phone_index &&
        (await users.findUserBy(ctx.ports.db, 'phone_index', row.phone_index))
      ) {
        throw new AppError('CONFLICT', 'This phone number already has an account');
      }
      if (attempt >= 5) throw err;
    }
  }
}

async function signIn(ctx: Context, user: users.UserRow, device: TDevice): Promise<TAuthTokens> {
  return ctx.ports.db.transaction().execute((trx) => startSession(ctx, trx, user, device));
}

export async function register(
  ctx: Context,
  input: {
    username?: string;
    phone?: string;
    password: string;
    displayName: string;
    device: TDevice;
  },
): Promise<TAuthResult> {
  await enforceLimit(ctx, 'register-ip', ctx.settings.auth.limits.registerIp, ctx.ip);
  assertPasswordAllowed(input.password);
  const username = input.username ?? null;
  // Usernames are public handles, so saying one is taken reveals nothing.
  if (username && (await users.usernameTaken(ctx.ports.db, username))) {
    throw new AppError('CONFLICT', 'This username is taken');
  }
  const passwordHash = await ctx.ports.passwords.hash(input.password);
  if (!input.phone) {
    const user = await createUser(ctx, {
      username,
      phone: null,
      passwordHash,
      displayName: input.displayName,
    });
    return signIn(ctx, user, input.device);
  }
  // With a phone, nothing is stored until the code comes back. Whether the number already has an
  // account is only said to whoever holds the phone (at verification), never to the caller.
  const registration: PendingRegistration = {
    username,
    passwordHash,
    displayName: input.displayName,
  };
  return openChallenge(ctx, {
    purpose: 'register',
    phone: input.phone,
    device: input.device,
    registration,
  });
}

export async function verifyOtp(
  ctx: Context,
  challengeId: string,
  code: string,
): Promise<TAuthTokens> {
  const challenge = await consumeChallenge(ctx, challengeId, code);
  if (challenge.purpose === 'register' && challenge.registration) {
    const user = await createUser(ctx, { ...challenge.registration, phone: challenge.phone });
    return signIn(ctx, user, challenge.device);
  }
  const user = challenge.userId
    ? await users.findUserById(ctx.ports.db, challenge.userId)
    : undefined;
  if (!user) throw new AppError('NOT_FOUND', 'The code expired; start again');
  return signIn(ctx, user, challenge.device);
}

export function sendOtp(ctx: Context, challengeId: string) {
  return resendChallenge(ctx, challengeId);
}

async function findByIdentifier(ctx: Context, raw: string): Promise<users.UserRow | undefined> {
  const id = parseIdentifier(raw);
  const db = ctx.ports.db;
  if (id.kind === 'phone')
    return users.findUserBy(db, 'phone_index', ctx.ports.cipher.blindIndex(id.value, 'phone'));
  return users.findUserBy(db, id.kind, id.value);
}

/**
 * The budget a login attempt is counted against. A device that signed in to this account before
 * shows its device cookie and has a budget of its own, so strangers failing on the identifier
 * (anyone who knows a username can) do not lock the owner out of their devices; every other
 * attempt counts against the identifier. The identifier's key is a blind index, so the limiter
 * and the backoff never hold a username or phone number.
 */
async function spendLoginBudget(
  ctx: Context,
  input: TLoginInput,
): Promise<{ budgetKey: string; user: users.UserRow | undefined }> {
  const { limits } = ctx.settings.auth;
  const spendIdentifier = async () => {
    const key = ctx.ports.cipher.blindIndex(parseIdentifier(input.identifier).value, 'login');
    await enforceLimit(ctx, 'login-account', limits.loginAccount, key);
    return key;
  };
  // The account is read before a budget is spent only when a cookie is shown: a login refused
  // over the identifier's budget (what an attack mostly is) costs no database read.
  if (!input.deviceCookies?.length) {
    const budgetKey = await spendIdentifier();
    return { budgetKey, user: await findByIdentifier(ctx, input.identifier) };
  }
  const user = await findByIdentifier(ctx, input.identifier);
  const cookie = user
    ? trustedDeviceCookie(ctx.ports.cipher, user, input.deviceCookies, ctx.ports.clock.now())
    : null;
  if (!cookie || !user) return { budgetKey: await spendIdentifier(), user };
  await enforceLimit(ctx, 'login-device', limits.loginDevice, cookie);
  // Every refresh answer carries a cookie: a thief with a refresh token could collect dozens,
  // each with a budget of its own. Together they get the identifier's budget, apart from it.
  await enforceLimit(ctx, 'login-device-account', limits.loginAccount, user.id);
  return { budgetKey: `device:${cookie}`, user };
}

/**
 * Never tells whether the account exists: one message for every failure, and an unknown
 * identifier still costs one argon2 verification, so the timing matches too. Limits are keyed
 * by the identifier (not the account), so they behave the same for accounts that do not exist;
 * only a device cookie, which only the account's own devices hold, moves an attempt elsewhere.
 */
export async function login(ctx: Context, input: TLoginInput): Promise<TAuthResult> {
  await enforceLimit(ctx, 'login-ip', ctx.settings.auth.limits.loginIp, ctx.ip);
  const spent = await spendLoginBudget(ctx, input);
  const { budgetKey } = spent;
  let { user } = spent;
  await assertNotBackedOff(ctx, budgetKey);

  const ok = user
    ? await ctx.ports.passwords.verify(user.password_hash, input.password)
    : await ctx.ports.passwords.verifyDummy(input.password);
  if (!user || !ok) {
    await recordFailure(ctx, budgetKey);
    throw new AppError('UNAUTHORIZED', WRONG_CREDENTIALS);
  }
  await clearFailures(ctx, budgetKey);

  const now = ctx.ports.clock.now();
  // One write: activity, plus a stronger hash when the configured cost has grown.
  const rehash = ctx.ports.passwords.needsRehash(user.password_hash);
  const stronger = rehash ? await ctx.ports.passwords.hash(input.password) : null;
  await users.updateUser(ctx.ports.db, user.id, {
    last_active_at: now,
    ...(stronger ? { password_hash: stronger, updated_at: now } : {}),
  });
  // The account as it is now: the device cookie this sign-in gets is bound to the new hash.
  if (stronger) user = { ...user, password_hash: stronger };

  if (user.require_otp_login && user.phone_ciphertext) {
    const phone = ctx.ports.cipher.decrypt(user.phone_ciphertext, phoneContext(user.id));
    return openChallenge(ctx, { purpose: 'login', phone, device: input.device, userId: user.id });
  }
  return signIn(ctx, user, input.device);
}

export async function logout(ctx: Context, userId: string, sessionId: string): Promise<void> {
  await revokeByIds(ctx, userId, { only: sessionId }, 'logout');
}
