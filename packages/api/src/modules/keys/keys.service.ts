import type { Transaction } from 'kysely';
import type { TDeviceRef } from '@mvp/contracts';
import { retryingDeadlocks, type DB } from '@mvp/db';
import type { Context } from '../../context';
import { AppError } from '../../errors/AppError';
import { locking } from '../../locking';
import { enforceLimit, ruleOf } from '../../rateLimit';
import * as users from '../auth/users.repo';
import { eitherBlocked } from '../contacts/relations.repo';
import { recordDeviceEvent, recordEvents, wake } from '../sync/events';
import * as repo from './keys.repo';
import { verifyEd25519 } from './signatures';
import { usableX25519 } from './x25519';

type Device = { userId: string; deviceId: string };
type SignedPrekey = { keyId: number; publicKey: string; signature: string };
type OneTimePrekey = { keyId: number; publicKey: string };

function assertSigned(signingKey: string, prekey: SignedPrekey): void {
  if (!verifyEd25519(signingKey, Buffer.from(prekey.publicKey, 'base64'), prekey.signature))
    throw new AppError('BAD_REQUEST', 'The signed prekey signature does not verify');
  assertUsable([prekey.publicKey]);
}

/** Keys peers run X3DH with must be usable points (see usableX25519). */
function assertUsable(publicKeys: string[]): void {
  if (!publicKeys.every(usableX25519))
    throw new AppError('BAD_REQUEST', 'A public key is not a usable X25519 key');
}

/**
 * The device's key row, locked until the transaction ends (MySQL; see `locking`): publishes and
 * uploads of one device take turns under it, so what they count and check stays true until they
 * write. As the first statement of the transaction, what is read after it is current.
 */
function lockedKeys(ctx: Context, trx: Transaction<DB>, deviceId: string) {
  return locking(
    ctx,
    trx.selectFrom('device_keys').selectAll().where('device_id', '=', deviceId),
  ).executeTakeFirst();
}

/** Adds one-time prekeys up to the cap; the caller holds the device's key row (`lockedKeys`). */
async function storePrekeys(
  ctx: Context,
  trx: Transaction<DB>,
  deviceId: string,
  prekeys: OneTimePrekey[],
  now: number,
): Promise<void> {
  if (prekeys.length === 0) return;
  assertUsable(prekeys.map((k) => k.publicKey));
  if (new Set(prekeys.map((k) => k.keyId)).size !== prekeys.length)
    throw new AppError('BAD_REQUEST', 'Duplicate prekey ids');
  const held = await repo.prekeyCount(trx, deviceId);
  if (held + prekeys.length > ctx.settings.keys.prekeyCap)
    throw new AppError(
      'BAD_REQUEST',
      `A device holds at most ${ctx.settings.keys.prekeyCap} prekeys`,
    );
  const taken = await trx
    .selectFrom('one_time_prekeys')
    .select('key_id')
    .where('device_id', '=', deviceId)
    .where(
      'key_id',
      'in',
      prekeys.map((k) => k.keyId),
    )
    .execute();
  if (taken.length > 0) throw new AppError('BAD_REQUEST', 'A prekey id is already in use');
  await trx
    .insertInto('one_time_prekeys')
    .values(
      prekeys.map((k) => ({
        device_id: deviceId,
        key_id: k.keyId,
        public_key: k.publicKey,
        created_at: now,
      })),
    )
    .execute();
}

type PublishInput = {
  identityKey: string;
  signingKey: string;
  signedPrekey: SignedPrekey;
  oneTimePrekeys: OneTimePrekey[];
};

/**
 * Publishes this device's keys. The same identity key again only refreshes the signed prekey and
 * adds one-time prekeys; a different one is a new device as far as peers are concerned: its old
 * prekeys go, and everyone who shares a contact or conversation with me hears of it (those who
 * verified me learn that the verification no longer holds).
 */
export async function publishKeys(ctx: Context, device: Device, input: PublishInput) {
  assertSigned(input.signingKey, input.signedPrekey);
  assertUsable([input.identityKey]);
  const now = ctx.ports.clock.now();
  // Two first publishes of one device both find no row (MySQL locks the gap) and both insert:
  // the deadlock victim, run again, finds the winner's row and updates it.
  const audience = await retryingDeadlocks(() =>
    ctx.ports.db.transaction().execute((trx) => writeKeys(ctx, trx, device, input, now)),
  );
  if (audience.length > 0) await wake(ctx.ports, audience);
  return keyCount(ctx, device);
}

/**
 * publishKeys' transaction: added, changed or the same is decided under the row lock (read
 * before it, two first publishes both inserted). Answers whom to wake.
 */
async function writeKeys(
  ctx: Context,
  trx: Transaction<DB>,
  device: Device,
  input: PublishInput,
  now: number,
): Promise<string[]> {
  const existing = await lockedKeys(ctx, trx, device.deviceId);
  const same =
    existing?.identity_key === input.identityKey && existing.signing_key === input.signingKey;
  const change = existing ? (same ? null : 'changed') : 'added';
  const keys = {
    identity_key: input.identityKey,
    signing_key: input.signingKey,
    signed_prekey_id: input.signedPrekey.keyId,
    signed_prekey: input.signedPrekey.publicKey,
    signed_prekey_signature: input.signedPrekey.signature,
    low_notified_at: null,
    updated_at: now,
  };
  if (!existing) {
    await trx
      .insertInto('device_keys')
      .values({ ...keys, device_id: device.deviceId, user_id: device.userId, created_at: now })
      .execute();
  } else {
    await trx
      .updateTable('device_keys')
      .set(keys)
      .where('device_id', '=', device.deviceId)
      .execute();
    if (change)
      await trx.deleteFrom('one_time_prekeys').where('device_id', '=', device.deviceId).execute();
  }
  await storePrekeys(ctx, trx, device.deviceId, input.oneTimePrekeys, now);
  if (!change) return [];
  const audience = await repo.keyAudience(trx, device.userId);
  const broken = await trx
    .selectFrom('verifications')
    .select('user_id')
    .where('target_user_id', '=', device.userId)
    .where('broken_at', 'is', null)
    .execute();
  const lost = new Set(broken.map((v) => v.user_id));
  if (lost.size > 0) {
    await trx
      .updateTable('verifications')
      .set({ broken_at: now })
      .where('target_user_id', '=', device.userId)
      .where('broken_at', 'is', null)
      .execute();
  }
  await recordEvents(
    trx,
    audience,
    (u) => ({
      type: 'device.keys',
      userId: device.userId,
      deviceId: device.deviceId,
      identityKey: input.identityKey,
      change,
      verificationLost: lost.has(u),
    }),
    now,
  );
  return audience;
}

const PUBLISH_FIRST = 'Publish this device’s keys first';

async function requireKeys(ctx: Context, deviceId: string) {
  const row = await ctx.ports.db
    .selectFrom('device_keys')
    .selectAll()
    .where('device_id', '=', deviceId)
    .executeTakeFirst();
  if (!row) throw new AppError('CONFLICT', PUBLISH_FIRST);
  return row;
}

/** Tops up one-time prekeys and/or rotates the signed prekey of this device. */
export async function uploadPrekeys(
  ctx: Context,
  device: Device,
  input: { signedPrekey?: SignedPrekey; oneTimePrekeys: OneTimePrekey[] },
) {
  const now = ctx.ports.clock.now();
  await retryingDeadlocks(() =>
    ctx.ports.db.transaction().execute(async (trx) => {
      const row = await lockedKeys(ctx, trx, device.deviceId);
      if (!row) throw new AppError('CONFLICT', PUBLISH_FIRST);
      if (input.signedPrekey) {
        assertSigned(row.signing_key, input.signedPrekey);
        await trx
          .updateTable('device_keys')
          .set({
            signed_prekey_id: input.signedPrekey.keyId,
            signed_prekey: input.signedPrekey.publicKey,
            signed_prekey_signature: input.signedPrekey.signature,
            updated_at: now,
          })
          .where('device_id', '=', device.deviceId)
          .execute();
      }
      await storePrekeys(ctx, trx, device.deviceId, input.oneTimePrekeys, now);
      // Topped up: the next shortage is news again.
      if ((await repo.prekeyCount(trx, device.deviceId)) >= ctx.settings.keys.lowThreshold) {
        await trx
          .updateTable('device_keys')
          .set({ low_notified_at: null })
          .where('device_id', '=', device.deviceId)
          .execute();
      }
    }),
  );
  return keyCount(ctx, device);
}

export async function keyCount(ctx: Context, device: Device) {
  const row = await requireKeys(ctx, device.deviceId);
  return {
    oneTimePrekeys: await repo.prekeyCount(ctx.ports.db, device.deviceId),
    signedPrekeyId: Number(row.signed_prekey_id),
    threshold: ctx.settings.keys.lowThreshold,
  };
}

async function requireUser(ctx: Context, userId: string): Promise<void> {
  if (!(await users.userExists(ctx.ports.db, userId)))
    throw new AppError('NOT_FOUND', 'No such user');
}

/** A user's devices (public keys only), for checking safety numbers and addressing envelopes. */
export async function listDevices(ctx: Context, userId: string) {
  await requireUser(ctx, userId);
  const rows = await repo.liveDeviceKeys(ctx.ports.db, [userId], ctx.ports.clock.now());
  return {
    userId,
    devices: rows.map((r) => ({
      deviceId: r.device_id,
      identityKey: r.identity_key,
      signingKey: r.signing_key,
    })),
  };
}

/**
 * A user's prekey bundle: for each live device, its keys and one one-time prekey, claimed for
 * good (null when none is left: X3DH then uses the signed prekey alone). A device whose stock
 * falls below the threshold gets one `keys.low` event on its stream until it tops up.
 *
 * One-time prekeys are taken only within a budget per claimer and user (`claimPairLimit`) and
 * one per user for all claimers together (`claimUserLimit`: new accounts cost nothing to make),
 * and never by someone on either side of a block: otherwise any account could empty anyone's
 * stock over and over (every session to them would then rest on the signed prekey alone). Past
 * either budget the bundle still answers, without one-time prekeys, as for a device that has none left, so a
 * block is not told apart from an empty stock.
 *
 * `deviceIds`: the devices the claimer has no session with; the others' one-time prekeys are
 * left alone (they answer with none), so adding a device does not cost the rest a key each.
 */
export async function claimBundle(
  ctx: Context,
  me: string,
  userId: string,
  deviceIds?: readonly string[],
) {
  await enforceLimit(ctx, 'key-claim-account', ctx.settings.keys.claimLimit, me);
  await requireUser(ctx, userId);
  const now = ctx.ports.clock.now();
  const rows = await repo.liveDeviceKeys(ctx.ports.db, [userId], now);
  return { userId, devices: await bundleOf(ctx, me, rows, deviceIds, now) };
}

/**
 * Bundles of several users in one call: a first send to a big group needs one per member, and
 * a round trip each (1 000 for a full group) took minutes on a phone. Each user costs the claim
 * budget one point, as a call of `claimBundle` does, and the per-pair limit and blocks apply
 * per user. An unknown user answers no devices, as one without keys does.
 */
export async function claimBundles(
  ctx: Context,
  me: string,
  users: readonly { userId: string; deviceIds?: readonly string[] | undefined }[],
) {
  await enforceLimit(ctx, 'key-claim-account', ctx.settings.keys.claimLimit, me, users.length);
  const now = ctx.ports.clock.now();
  const rows = await repo.liveDeviceKeys(
    ctx.ports.db,
    users.map((u) => u.userId),
    now,
  );
  const bundles = [];
  for (const { userId, deviceIds } of users) {
    const theirs = rows.filter((r) => r.user_id === userId);
    bundles.push({ userId, devices: await bundleOf(ctx, me, theirs, deviceIds, now) });
  }
  return { users: bundles };
}

/** One user's bundle from their live device rows: one-time prekeys taken as allowed. */
async function bundleOf(
  ctx: Context,
  me: string,
  rows: Awaited<ReturnType<typeof repo.liveDeviceKeys>>,
  deviceIds: readonly string[] | undefined,
  now: number,
) {
  // Budgets are keyed by the id as stored: MySQL finds the rows by an id in any case, and a
  // budget keyed by each spelling would be a budget per spelling.
  const stored = rows[0]?.user_id;
  const spend = stored !== undefined && (await mayTakeOneTimeKeys(ctx, me, stored));
  const devices = [];
  for (const row of rows) {
    const wanted = spend && (!deviceIds || deviceIds.includes(row.device_id));
    const oneTimePrekey = wanted ? await repo.claimPrekey(ctx.ports.db, row.device_id) : null;
    devices.push({
      deviceId: row.device_id,
      identityKey: row.identity_key,
      signingKey: row.signing_key,
      signedPrekey: {
        keyId: Number(row.signed_prekey_id),
        publicKey: row.signed_prekey,
        signature: row.signed_prekey_signature,
      },
      oneTimePrekey,
    });
    if (wanted) await warnIfLow(ctx, { userId: row.user_id, deviceId: row.device_id }, now);
  }
  return devices;
}

async function mayTakeOneTimeKeys(ctx: Context, me: string, userId: string): Promise<boolean> {
  if (await eitherBlocked(ctx.ports.db, me, userId)) return false;
  const { claimPairLimit, claimUserLimit } = ctx.settings.keys;
  const pair = ruleOf('key-claim-pair', claimPairLimit);
  if (!(await ctx.ports.rateLimiter.consume(pair, `${me}:${userId}`)).allowed) return false;
  const user = ruleOf('key-claim-user', claimUserLimit);
  return (await ctx.ports.rateLimiter.consume(user, userId)).allowed;
}

async function warnIfLow(ctx: Context, device: Device, now: number): Promise<void> {
  const remaining = await repo.prekeyCount(ctx.ports.db, device.deviceId);
  if (remaining >= ctx.settings.keys.lowThreshold) return;
  const told = await ctx.ports.db.transaction().execute(async (trx) => {
    // Conditional: of concurrent claims, exactly one tells the device.
    const marked = await trx
      .updateTable('device_keys')
      .set({ low_notified_at: now })
      .where('device_id', '=', device.deviceId)
      .where('low_notified_at', 'is', null)
      .executeTakeFirst();
    if (Number(marked.numUpdatedRows) !== 1) return false;
    await recordDeviceEvent(trx, device, { type: 'keys.low', remaining }, now);
    return true;
  });
  if (told) await wake(ctx.ports, [device.userId]);
}

/**
 * For envelopes meant for every device of each recipient: the named devices must be exactly the
 * recipients' live devices (my own other devices when I write to myself). Otherwise nothing is
 * sent and DEVICES_CHANGED lists what to add and what to drop.
 */
export async function assertCompleteDeviceSets(
  ctx: Context,
  sender: Device,
  targets: TDeviceRef[],
): Promise<void> {
  const userIds = [...new Set(targets.map((t) => t.userId))];
  const live = await repo.liveDeviceKeys(ctx.ports.db, userIds, ctx.ports.clock.now());
  const key = (d: TDeviceRef) => `${d.userId}/${d.deviceId}`;
  const expected = live
    .map((r) => ({ userId: r.user_id, deviceId: r.device_id }))
    .filter((d) => d.deviceId !== sender.deviceId);
  const named = new Set(targets.map(key));
  const known = new Set(expected.map(key));
  const missing = expected.filter((d) => !named.has(key(d)));
  const stale = targets
    .filter((d) => !known.has(key(d)))
    .map(({ userId, deviceId }) => ({ userId, deviceId }));
  if (missing.length > 0 || stale.length > 0)
    throw new AppError('DEVICES_CHANGED', 'The device list changed; refresh it and retry', {
      devices: { missing, stale },
    });
}

export async function verify(
  ctx: Context,
  me: string,
  input: { userId: string; fingerprint: string; method: 'qr' | 'manual' },
) {
  if (input.userId === me) throw new AppError('BAD_REQUEST', 'Verify someone else');
  await requireUser(ctx, input.userId);
  const now = ctx.ports.clock.now();
  const row = {
    user_id: me,
    target_user_id: input.userId,
    fingerprint: input.fingerprint,
    method: input.method,
    verified_at: now,
    broken_at: null,
  };
  await ctx.ports.db.transaction().execute(async (trx) => {
    await trx
      .deleteFrom('verifications')
      .where('user_id', '=', me)
      .where('target_user_id', '=', input.userId)
      .execute();
    await trx.insertInto('verifications').values(row).execute();
  });
  return verification(ctx, me, input.userId);
}

/** My verification of someone, or null when I never verified them. */
export async function verification(ctx: Context, me: string, userId: string) {
  const row = await ctx.ports.db
    .selectFrom('verifications')
    .selectAll()
    .where('user_id', '=', me)
    .where('target_user_id', '=', userId)
    .executeTakeFirst();
  if (!row) return null;
  return {
    userId,
    fingerprint: row.fingerprint,
    method: row.method as 'qr' | 'manual',
    verifiedAt: new Date(Number(row.verified_at)).toISOString(),
    verified: row.broken_at === null,
  };
}

/**
 * Devices of `userId` whose sessions just ended (signed out, revoked) leave the directory; the
 * people who share a conversation or contact with them, and their own other devices, are told
 * (`device.keys` with `removed`), so that sender keys such a device held (a stolen phone's) are
 * replaced before the next send instead of being used on. Devices that never published keys
 * held none and are not mentioned.
 */
export async function announceDevicesGone(
  ctx: Context,
  userId: string,
  sessionIds: string[],
): Promise<void> {
  if (sessionIds.length === 0) return;
  const db = ctx.ports.db;
  const gone = await db
    .selectFrom('sessions as s')
    .innerJoin('device_keys as k', 'k.device_id', 's.device_id')
    .select(['k.device_id', 'k.identity_key'])
    .where('s.id', 'in', sessionIds)
    .where('s.user_id', '=', userId)
    .execute();
  if (gone.length === 0) return;
  const audience = await repo.keyAudience(db, userId);
  const now = ctx.ports.clock.now();
  await db.transaction().execute(async (trx) => {
    for (const device of gone)
      await recordEvents(
        trx,
        audience,
        {
          type: 'device.keys',
          userId,
          deviceId: device.device_id,
          identityKey: device.identity_key,
          change: 'removed',
          verificationLost: false,
        },
        now,
      );
  });
  await wake(ctx.ports, audience);
}
