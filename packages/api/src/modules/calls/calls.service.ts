import type { Kysely, Selectable, Transaction } from 'kysely';
import type { TCall, TCallEndReason, TCallState, THangupReason, TSyncEvent } from '@mvp/contracts';
import {
  awaitSteps,
  prepared,
  retryingDeadlocks,
  step,
  transactionOf,
  type CallsTable,
  type DB,
  type Steps,
} from '@mvp/db';
import type { Context } from '../../context';
import { AppError } from '../../errors/AppError';
import { locking } from '../../locking';
import { enforceLimit } from '../../rateLimit';
import { recordEachSteps, recordEventSteps, StreamWrites } from '../sync/events';
import { iceServersFor } from './iceServers';

export type CallRow = Selectable<CallsTable>;
export type Device = { userId: string; deviceId: string };
type DurableCallEvent = Exclude<
  TSyncEvent,
  { type: 'resync' | 'presence' | 'typing' | 'call.signal' }
>;

export const NOT_FOUND = 'No such call';
const iso = (ms: number | null) => (ms === null ? null : new Date(Number(ms)).toISOString());

export function toCall(row: CallRow, viewerId: string): TCall {
  const accepted = row.accepted_at === null ? null : Number(row.accepted_at);
  const ended = row.ended_at === null ? null : Number(row.ended_at);
  return {
    id: row.id,
    callerId: row.caller_id,
    calleeId: row.callee_id,
    direction: row.caller_id === viewerId ? 'outgoing' : 'incoming',
    media: row.media as TCall['media'],
    state: row.state as TCallState,
    endReason: row.end_reason as TCallEndReason | null,
    startedAt: iso(row.created_at)!,
    acceptedAt: iso(accepted),
    endedAt: iso(ended),
    durationSeconds:
      accepted !== null && ended !== null ? Math.round((ended - accepted) / 1000) : 0,
  };
}

// Every call candidate reads the call: compiled once (see `prepared`).
const callById = prepared((db: Kysely<DB>, id: string) =>
  db.selectFrom('calls').selectAll().where('id', '=', id),
);

async function findCall(ctx: Context, id: string): Promise<CallRow | undefined> {
  return (await callById(ctx.ports.db, id)).rows[0];
}

/** A call I take part in; anyone else's call does not exist for me. */
export async function myCall(ctx: Context, me: string, id: string): Promise<CallRow> {
  const row = await findCall(ctx, id);
  if (!row || (row.caller_id !== me && row.callee_id !== me))
    throw new AppError('NOT_FOUND', NOT_FOUND);
  return row;
}

/** Whether `device` is one of the two devices of an answered call. */
const inCall = (row: CallRow, device: Device) =>
  device.deviceId === row.caller_device_id || device.deviceId === row.callee_device_id;

export function assertPayload(ctx: Context, ciphertexts: string[]): void {
  const max = ctx.settings.calls.maxPayloadBytes;
  // The decoded size without decoding (each payload is ZBase64: canonical, padded).
  if (ciphertexts.some((c) => Buffer.byteLength(c, 'base64') > max))
    throw new AppError('PAYLOAD_TOO_LARGE', `Call payloads are at most ${max} bytes`);
}

/** Steps that store the call's new state for both people's devices (`writes` wakes them). */
export function* tellBoth(row: CallRow, now: number, writes: StreamWrites): Steps<void> {
  const event = (viewer: string): DurableCallEvent => ({
    type: 'call.ended',
    call: toCall(row, viewer),
  });
  yield* recordEventSteps([row.caller_id, row.callee_id], event, now, writes);
}

// A call's ending and its answer run on every hang-up and accept: compiled once (see `prepared`).
const endCall = prepared(
  (
    db: Kysely<DB>,
    id: string,
    from: TCallState,
    state: TCallState,
    reason: TCallEndReason,
    now: number,
  ) =>
    db
      .updateTable('calls')
      .set({ state, end_reason: reason, ended_at: now })
      .where('id', '=', id)
      .where('state', '=', from),
);

// The timeout job's ending of an answered call: only while a side's heartbeats are still stale.
// It read the call stale a while ago (a run can take minutes), and a beat may have come since.
const endSilentCall = prepared((db: Kysely<DB>, id: string, now: number, beatsBefore: number) =>
  db
    .updateTable('calls')
    .set({ state: 'ended', end_reason: 'ice_timeout', ended_at: now })
    .where('id', '=', id)
    .where('state', '=', 'accepted')
    .where((eb) =>
      eb.or([eb('caller_beat_at', '<=', beatsBefore), eb('callee_beat_at', '<=', beatsBefore)]),
    ),
);

// Only while it rings and within the ring timeout: past it the call is missed, whether or not
// the timeout job has got to it yet (and a cold start no longer lists it: ringingInvites).
const answerCall = prepared(
  (db: Kysely<DB>, id: string, deviceId: string, now: number, rangSince: number) =>
    db
      .updateTable('calls')
      .set({
        state: 'accepted',
        callee_device_id: deviceId,
        accepted_at: now,
        caller_beat_at: now,
        callee_beat_at: now,
      })
      .where('id', '=', id)
      .where('state', '=', 'ringing')
      .where('created_at', '>', rangSince),
);

type EndChange = {
  from: TCallState;
  state: TCallState;
  reason: TCallEndReason;
  now: number;
  /** The timeout job's `ice_timeout`: only while a side's last beat is at or before this. */
  beatsBefore?: number;
};

/**
 * Steps that move a live call to a final state with a conditional update (only from `from`), so
 * of two racing endings exactly one happens: the other gets null and changes nothing.
 */
export function* endIn(
  row: CallRow,
  change: EndChange,
  writes: StreamWrites,
): Steps<CallRow | null> {
  const { from, state, reason, now, beatsBefore } = change;
  const result =
    beatsBefore === undefined
      ? yield* step(endCall, row.id, from, state, reason, now)
      : yield* step(endSilentCall, row.id, now, beatsBefore);
  if (Number(result.numAffectedRows) !== 1) return null;
  const updated = { ...row, state, end_reason: reason, ended_at: now };
  yield* tellBoth(updated, now, writes);
  return updated;
}

/**
 * Inside an account's deletion, before its row goes: its ringing and answered calls end
 * (`user_hangup`), told to both people, so the other one's devices stop ringing or connecting
 * (the cascade then removes the rows without a word). `writes` wakes them after commit.
 */
export async function endLiveCallsOf(
  ctx: Context,
  trx: Transaction<DB>,
  userId: string,
  now: number,
  writes: StreamWrites,
): Promise<void> {
  // Locking reads (on MySQL): current rows, not the snapshot this transaction took before it
  // waited for conversation locks, in which a call placed or answered meanwhile is missing or
  // still ringing. One read per side, each on its own index (an OR could lock the table).
  const live = [];
  for (const side of ['caller_id', 'callee_id'] as const) {
    const query = trx
      .selectFrom('calls')
      .selectAll()
      .where(side, '=', userId)
      .where('state', 'in', ['ringing', 'accepted']);
    live.push(...(await locking(ctx, query).execute()));
  }
  for (const row of live) {
    const from = row.state as TCallState;
    const change = { from, state: 'ended' as const, reason: 'user_hangup' as const, now };
    await awaitSteps(trx, endIn(row, change, writes));
  }
}

/**
 * `endIn` in a transaction of its own; the loser of a race gets CONFLICT. The ended row comes
 * back for the caller to show in its own viewer's direction.
 */
export async function finish(
  ctx: Context,
  row: CallRow,
  from: TCallState,
  state: TCallState,
  reason: TCallEndReason,
  beatsBefore?: number,
): Promise<CallRow> {
  const now = ctx.ports.clock.now();
  const change = {
    from,
    state,
    reason,
    now,
    ...(beatsBefore === undefined ? {} : { beatsBefore }),
  };
  // It locks the call's row, then both streams; a start that finds glare takes the streams,
  // then the row it ends: should the database pick this one as the deadlock's victim, it is
  // written again.
  let writes!: StreamWrites; // made afresh by each run
  const ended = await retryingDeadlocks(() => {
    writes = new StreamWrites();
    return transactionOf(ctx.ports.db, () => endIn(row, change, writes));
  });
  if (!ended) throw new AppError('CONFLICT', 'This call has already ended');
  await writes.wake(ctx.ports);
  return ended;
}

export function iceServers(ctx: Context, userId: string) {
  return enforceLimit(ctx, 'ice-servers-account', ctx.settings.calls.iceLimit, userId).then(() =>
    iceServersFor(ctx.settings.calls, userId, ctx.ports.clock.now()),
  );
}

/**
 * The first callee device to accept wins (a conditional update from `ringing`); the caller's
 * device gets the encrypted answer, the callee's devices hear who answered so the rest stop.
 */
export async function acceptCall(
  ctx: Context,
  device: Device,
  input: { callId: string; answer: string },
): Promise<TCall> {
  const row = await myCall(ctx, device.userId, input.callId);
  if (row.callee_id !== device.userId) throw new AppError('NOT_FOUND', NOT_FOUND);
  assertPayload(ctx, [input.answer]);
  const now = ctx.ports.clock.now();
  function* answer(writes: StreamWrites): Steps<boolean> {
    const rangSince = now - ctx.settings.calls.ringTimeoutMs;
    const result = yield* step(answerCall, row.id, device.deviceId, now, rangSince);
    if (Number(result.numAffectedRows) !== 1) return false;
    // Both streams in one append (one lock order with every other writer).
    yield* recordEachSteps(
      [
        {
          userId: row.caller_id,
          deviceId: row.caller_device_id,
          event: {
            type: 'call.accepted',
            callId: row.id,
            deviceId: device.deviceId,
            answer: input.answer,
          },
        },
        {
          userId: row.callee_id,
          event: { type: 'call.answered_elsewhere', callId: row.id, deviceId: device.deviceId },
        },
      ],
      now,
      writes,
    );
    return true;
  }
  // A send or another call's start locking the same streams may still deadlock: answered again.
  let writes!: StreamWrites; // made afresh by each run
  const accepted = await retryingDeadlocks(() => {
    writes = new StreamWrites();
    return transactionOf(ctx.ports.db, () => answer(writes));
  });
  if (!accepted) throw new AppError('CONFLICT', 'This call is no longer ringing');
  await writes.wake(ctx.ports);
  // The conditional update took it from ringing, so the row is what it wrote.
  const answered = {
    ...row,
    state: 'accepted',
    callee_device_id: device.deviceId,
    accepted_at: now,
    caller_beat_at: now,
    callee_beat_at: now,
  };
  return toCall(answered, device.userId);
}

/** Ends an answered call: `ice_failed` and `user_media_failed` end it as `failed`. */
function hangUpAnswered(ctx: Context, row: CallRow, reason: THangupReason): Promise<CallRow> {
  const failed = reason === 'ice_failed' || reason === 'user_media_failed';
  return finish(ctx, row, 'accepted', failed ? 'failed' : 'ended', reason);
}

/**
 * Ends a ringing call (a cancel, a decline). An answer that got in first (the two crossed, or
 * this device's screen was behind) is hung up instead when this device is in the answered
 * call: its person has gone either way, and the other must not sit connecting to nobody until
 * the heartbeats time out. A device not in it (it only rang) is refused: the call goes on.
 */
async function endRinging(
  ctx: Context,
  device: Device,
  row: CallRow,
  end: { state: TCallState; reason: TCallEndReason; hangup: THangupReason },
): Promise<TCall> {
  try {
    return toCall(await finish(ctx, row, 'ringing', end.state, end.reason), device.userId);
  } catch (err) {
    if (!(err instanceof AppError) || err.appCode !== 'CONFLICT') throw err;
    const answered = await findCall(ctx, row.id);
    if (answered?.state !== 'accepted' || !inCall(answered, device)) throw err;
    return toCall(await hangUpAnswered(ctx, answered, end.hangup), device.userId);
  }
}

/**
 * The callee declines: declined everywhere, on every device of both. Answered meanwhile by this
 * device, it is hung up with `hangup` (see `endRinging`).
 */
export async function rejectCall(
  ctx: Context,
  device: Device,
  callId: string,
  hangup: THangupReason = 'user_hangup',
): Promise<TCall> {
  const row = await myCall(ctx, device.userId, callId);
  if (row.callee_id !== device.userId) throw new AppError('NOT_FOUND', NOT_FOUND);
  return endRinging(ctx, device, row, { state: 'rejected', reason: 'user_declined', hangup });
}

/**
 * The caller gives up before an answer: a missed call for the callee. Answered meanwhile, it is
 * hung up with `hangup` (see `endRinging`).
 */
export async function cancelCall(
  ctx: Context,
  device: Device,
  callId: string,
  hangup: THangupReason = 'user_hangup',
): Promise<TCall> {
  const row = await myCall(ctx, device.userId, callId);
  if (row.caller_id !== device.userId) throw new AppError('NOT_FOUND', NOT_FOUND);
  return endRinging(ctx, device, row, { state: 'missed', reason: 'user_hangup', hangup });
}

/**
 * Either side ends an answered call (a ringing one: the caller cancels, the callee declines).
 * `ice_failed` and `user_media_failed` end it as `failed`.
 */
export async function hangup(
  ctx: Context,
  device: Device,
  input: { callId: string; reason: THangupReason },
): Promise<TCall> {
  const row = await myCall(ctx, device.userId, input.callId);
  if (row.state === 'ringing') {
    return row.caller_id === device.userId
      ? cancelCall(ctx, device, row.id, input.reason)
      : rejectCall(ctx, device, row.id, input.reason);
  }
  // My other devices stopped ringing when it was answered: they are not in the call.
  if (row.state === 'accepted' && !inCall(row, device))
    throw new AppError('CONFLICT', 'This call was answered on another device');
  return toCall(await hangUpAnswered(ctx, row, input.reason), device.userId);
}

/**
 * Devices signed out or revoked: the calls they placed that still ring, and the answered calls
 * they are in, are hung up by them (`user_hangup`), so the other side is not left ringing or
 * connecting to a device that is gone (a closed tab signs its page out). A call that rings one of
 * them as one of the callee's devices rings on: another may answer it. A call that ended
 * meanwhile is passed over; the others are tried whatever one meets (their failures are thrown
 * together at the end). Read by the user's side indexes (side, state, created_at).
 */
export async function endCallsOfDevices(
  ctx: Context,
  userId: string,
  deviceIds: string[],
): Promise<void> {
  if (deviceIds.length === 0) return;
  const gone = new Set(deviceIds);
  const db = ctx.ports.db;
  const [placed, taken] = await Promise.all([
    db
      .selectFrom('calls')
      .select(['id', 'caller_device_id as device_id'])
      .where('caller_id', '=', userId)
      .where('state', 'in', ['ringing', 'accepted'])
      .execute(),
    db
      .selectFrom('calls')
      .select(['id', 'callee_device_id as device_id'])
      .where('callee_id', '=', userId)
      .where('state', '=', 'accepted')
      .execute(),
  ]);
  const failures: unknown[] = [];
  for (const { id, device_id: deviceId } of [...placed, ...taken]) {
    if (deviceId === null || !gone.has(deviceId)) continue;
    // Each on its own: one that fails (a deadlock) must not leave the others going.
    await hangup(ctx, { userId, deviceId }, { callId: id, reason: 'user_hangup' }).catch(
      (error: unknown) => {
        if (!(error instanceof AppError && error.appCode === 'CONFLICT')) failures.push(error);
      },
    );
  }
  if (failures.length > 0) throw new AggregateError(failures, 'Some calls could not be ended');
}

/**
 * The timeout job (one instance at a time): calls ringing past the ring timeout become `missed`
 * (`invite_timeout`); answered calls where either side's heartbeats stopped become `ended`
 * (`ice_timeout`).
 */
export async function expireCalls(ctx: Context, signal?: AbortSignal): Promise<number> {
  const now = ctx.ports.clock.now();
  const { ringTimeoutMs, heartbeatTimeoutMs } = ctx.settings.calls;
  const stale = await ctx.ports.db
    .selectFrom('calls')
    .selectAll()
    .where((eb) =>
      eb.or([
        eb.and([eb('state', '=', 'ringing'), eb('created_at', '<=', now - ringTimeoutMs)]),
        eb.and([
          eb('state', '=', 'accepted'),
          eb.or([
            eb('caller_beat_at', '<=', now - heartbeatTimeoutMs),
            eb('callee_beat_at', '<=', now - heartbeatTimeoutMs),
          ]),
        ]),
      ]),
    )
    .limit(500)
    .execute();
  let ended = 0;
  for (const row of stale) {
    // Lock lost (see runLocked): the rest is left to the next run.
    if (signal?.aborted) break;
    try {
      // A ringing call leaves ringing only by its state; an answered one may have beaten since.
      if (row.state === 'ringing') await finish(ctx, row, 'ringing', 'missed', 'invite_timeout');
      else await finish(ctx, row, 'accepted', 'ended', 'ice_timeout', now - heartbeatTimeoutMs);
      ended++;
    } catch (err) {
      // Ended by one of the two meanwhile, or beating again: nothing to do.
      if (!(err instanceof AppError && err.appCode === 'CONFLICT')) throw err;
    }
  }
  return ended;
}
