import type { Kysely } from 'kysely';
import type { TCall, TCallEndReason, TCallState, TRingingCall } from '@mvp/contracts';
import {
  isUniqueViolation,
  prepared,
  retryingDeadlocks,
  step,
  transactionOf,
  type DB,
  type Steps,
} from '@mvp/db';
import type { Context } from '../../context';
import { AppError } from '../../errors/AppError';
import { enforceLimit } from '../../rateLimit';
import * as users from '../auth/users.repo';
import { blockedBetween } from '../conversations/conversations.service';
import { recordEachSteps, StreamWrites } from '../sync/events';
import { assertPayload, endIn, tellBoth, toCall, type CallRow, type Device } from './calls.service';

/**
 * How far a call id's time (the caller's clock) may be from ours. History pages by id, so ids
 * must sort by time; a device whose clock is further off is told so instead.
 */
const CALL_ID_SKEW_MS = 10 * 60_000;
const LIVE: readonly string[] = ['ringing', 'accepted'];

/** The milliseconds since the epoch that a UUIDv7 starts with (its first 48 bits). */
function timeOfUuidV7(id: string): number {
  return parseInt(id.slice(0, 8) + id.slice(9, 13), 16);
}

// A call's start runs these (the lock on MySQL only), always for two people: compiled once (see
// `prepared`).
const lockTwoStreams = prepared((db: Kysely<DB>, first: string, second: string) =>
  db
    .selectFrom('user_streams')
    .select('user_id')
    .where('user_id', 'in', [first, second])
    .orderBy('user_id')
    .forUpdate(),
);

/**
 * The ringing and accepted calls of two people, either side: one arm per side, each on that
 * side's (side, state) index (by state alone, every live call of everyone was read). A call
 * between the two is in the first arm only, so none comes twice.
 */
export const liveCallsOf = prepared((db: Kysely<DB>, a: string, b: string) =>
  db
    .selectFrom('calls')
    .selectAll()
    .where('caller_id', 'in', [a, b])
    .where('state', 'in', [...LIVE])
    .unionAll(
      db
        .selectFrom('calls')
        .selectAll()
        .where('callee_id', 'in', [a, b])
        .where('state', 'in', [...LIVE])
        .where('caller_id', 'not in', [a, b]),
    ),
);

/** The device ids of two people, in one query. */
const devicesOfTwo = prepared((db: Kysely<DB>, a: string, b: string) =>
  db.selectFrom('devices').select(['id', 'user_id']).where('user_id', 'in', [a, b]),
);

const insertCallRow = prepared(
  (
    db: Kysely<DB>,
    ...[id, caller, callerDevice, callee, media, state, reason, now, endedAt]: [
      string,
      string,
      string,
      string,
      string,
      string,
      string | null,
      number,
      number | null,
    ]
  ) =>
    db.insertInto('calls').values({
      id,
      caller_id: caller,
      caller_device_id: callerDevice,
      callee_id: callee,
      callee_device_id: null,
      media,
      state,
      end_reason: reason,
      created_at: now,
      accepted_at: null,
      ended_at: endedAt,
      caller_beat_at: null,
      callee_beat_at: null,
    }),
);

/**
 * Steps that store a call's row as it is placed (ringing, or ended at once), or CONFLICT when its
 * (caller-made) id is taken: a retried or reused id. It runs in the placing transaction, so a
 * glare that start ended is rolled back with it.
 */
function* insertCall(row: CallRow): Steps<void> {
  try {
    yield* step(
      insertCallRow,
      row.id,
      row.caller_id,
      row.caller_device_id,
      row.callee_id,
      row.media,
      row.state,
      row.end_reason,
      row.created_at,
      row.ended_at,
    );
  } catch (err) {
    if (isUniqueViolation(err)) throw new AppError('CONFLICT', 'This call id is taken');
    throw err;
  }
}

/** The device ids of two users (each listed, with none if they have none). */
async function devicesOf(ctx: Context, a: string, b: string): Promise<Map<string, string[]>> {
  const { rows } = await devicesOfTwo(ctx.ports.db, a, b);
  const byUser = new Map<string, string[]>([
    [a, []],
    [b, []],
  ]);
  for (const r of rows) byUser.get(r.user_id)?.push(r.id);
  return byUser;
}

/**
 * Rings the callee: each named device gets its own encrypted offer as a durable `call.invite`
 * (so a device that reconnects while it rings still sees it); my other devices learn of it.
 * Busy when the callee is in a live call. Glare (we call each other at once): the call placed by
 * the smaller user id goes on and the other ends with `glare`, the same answer on both sides.
 */
export async function startCall(
  ctx: Context,
  device: Device,
  input: {
    callId: string;
    calleeId: string;
    media: 'audio' | 'video';
    offers: { deviceId: string; ciphertext: string }[];
  },
): Promise<TCall> {
  const me = device.userId;
  await enforceLimit(ctx, 'call-start-account', ctx.settings.calls.startLimit, me);
  if (input.calleeId === me) throw new AppError('BAD_REQUEST', 'You cannot call yourself');
  if (Math.abs(timeOfUuidV7(input.callId) - ctx.ports.clock.now()) > CALL_ID_SKEW_MS)
    throw new AppError(
      'BAD_REQUEST',
      "The call id's time is far from the server's: check the clock",
    );
  assertPayload(
    ctx,
    input.offers.map((o) => o.ciphertext),
  );
  if (!(await users.userExists(ctx.ports.db, input.calleeId)))
    throw new AppError('NOT_FOUND', 'No such user');
  if (await blockedBetween(ctx, me, input.calleeId))
    throw new AppError('FORBIDDEN', 'You cannot call this user');
  const devices = await devicesOf(ctx, input.calleeId, me);
  const calleeDevices = new Set(devices.get(input.calleeId));
  if (input.offers.some((o) => !calleeDevices.has(o.deviceId)))
    throw new AppError('NOT_FOUND', 'No such device');

  const now = ctx.ports.clock.now();
  const row: CallRow = {
    id: input.callId,
    caller_id: me,
    caller_device_id: device.deviceId,
    callee_id: input.calleeId,
    callee_device_id: null,
    media: input.media,
    state: 'ringing',
    end_reason: null,
    created_at: now,
    accepted_at: null,
    ended_at: null,
    caller_beat_at: null,
    callee_beat_at: null,
  };
  const mine = devices.get(me)!.filter((d) => d !== device.deviceId);
  const invites = [
    ...input.offers.map((offer) => ({
      userId: input.calleeId,
      deviceId: offer.deviceId,
      event: {
        type: 'call.invite' as const,
        call: toCall(row, input.calleeId),
        callerDeviceId: device.deviceId,
        offer: offer.ciphertext,
      },
    })),
    ...mine.map((other) => ({
      userId: me,
      deviceId: other,
      event: {
        type: 'call.invite' as const,
        call: toCall(row, me),
        callerDeviceId: device.deviceId,
        offer: null,
      },
    })),
  ];
  const locks = ctx.ports.dialect === 'mysql';
  function* place(writes: StreamWrites): Steps<CallRow> {
    // Both people's streams, locked in user id order (the order appendEvents takes them in) for
    // the rest of the transaction: a start decides busy and glare from the live calls it reads
    // next, so two starts that involve the same person must not both read before either
    // writes. On SQLite one transaction runs at a time anyway (one connection).
    if (locks) yield* step(lockTwoStreams, me, input.calleeId);
    const { rows: live } = yield* step(liveCallsOf, me, input.calleeId);
    const glare = live.find(
      (c) => c.state === 'ringing' && c.caller_id === input.calleeId && c.callee_id === me,
    );
    // In a call with someone else, the callee is busy, glare or not (their call to me rings on).
    const callee = input.calleeId;
    if (live.some((c) => c !== glare && (c.caller_id === callee || c.callee_id === callee)))
      return yield* settleIn(row, 'busy', 'user_busy', writes);
    if (glare) {
      // The smaller user id's call wins; theirs is the one that goes on when they are smaller.
      if (input.calleeId < me) return yield* settleIn(row, 'ended', 'glare', writes);
      const change = {
        from: 'ringing' as const,
        state: 'ended' as const,
        reason: 'glare' as const,
        now,
      };
      yield* endIn(glare, change, writes);
    }
    yield* insertCall(row);
    // The callee's devices and my others in one append: three statements, not three per device.
    yield* recordEachSteps(invites, now, writes);
    return row;
  }
  // Two starts locking the same streams, or a start and a send, may deadlock: written again.
  let writes!: StreamWrites; // made afresh by each run
  const placed = await retryingDeadlocks(() => {
    writes = new StreamWrites();
    return transactionOf(ctx.ports.db, () => place(writes));
  });
  await writes.wake(ctx.ports);
  return toCall(placed, me);
}

/**
 * A callee's calls still ringing that were placed after `since`, oldest first: through
 * `calls_callee_state_at (callee_id, state, created_at)`, in order. (Without it SQLite read
 * `calls_state`: everyone's calls ringing now, on every cold start.)
 */
export const ringingCallsOf = (db: Kysely<DB>, calleeId: string, since: number) =>
  db
    .selectFrom('calls')
    .selectAll()
    .where('callee_id', '=', calleeId)
    .where('state', '=', 'ringing')
    .where('created_at', '>', since)
    .orderBy('created_at')
    .limit(32);

/**
 * Calls ringing this device whose invite is in its stream at or before `upTo`, each with the
 * offer that invite carried: `sync.snapshot` lists them, so a cold start (which streams from
 * `upTo` on) rings for a call placed before the device connected. Oldest first.
 */
export async function ringingInvites(
  ctx: Context,
  device: Device,
  upTo: number,
): Promise<TRingingCall[]> {
  const db = ctx.ports.db;
  // Past the ring timeout a call is about to become missed: not worth ringing for.
  const since = ctx.ports.clock.now() - ctx.settings.calls.ringTimeoutMs;
  const ringing = await ringingCallsOf(db, device.userId, since).execute();
  if (ringing.length === 0) return [];
  const calls = new Map(ringing.map((row) => [row.id, row]));
  const invites = await db
    .selectFrom('user_events')
    .select('payload')
    .where('user_id', '=', device.userId)
    .where('device_id', '=', device.deviceId)
    .where('type', '=', 'call.invite')
    .where('seq', '<=', upTo)
    .where('created_at', '>=', Number(ringing[0]!.created_at))
    .orderBy('seq')
    .execute();
  const found: TRingingCall[] = [];
  for (const { payload } of invites) {
    // Written by `startCall` from a validated `call.invite`, so the shape is known.
    const invite = JSON.parse(payload) as { call: TCall; callerDeviceId: string; offer: string };
    const row = calls.get(invite.call.id);
    if (!row) continue; // no longer ringing
    found.push({
      call: toCall(row, device.userId),
      callerDeviceId: invite.callerDeviceId,
      offer: invite.offer,
    });
  }
  return found;
}

/** Steps for a call that ends as it is placed (busy, or the glare it lost): stored, told to both. */
function* settleIn(
  row: CallRow,
  state: TCallState,
  reason: TCallEndReason,
  writes: StreamWrites,
): Steps<CallRow> {
  const ended = { ...row, state, end_reason: reason, ended_at: row.created_at };
  yield* insertCall(ended);
  yield* tellBoth(ended, row.created_at, writes);
  return ended;
}
