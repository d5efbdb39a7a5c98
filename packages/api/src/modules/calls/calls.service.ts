import type { Kysely, Selectable, Transaction } from 'kysely';
import type {
  TCall,
  TCallEndReason,
  TCallState,
  THangupReason,
  TRingingCall,
  TSyncEvent,
} from '@mvp/contracts';
import { isDeadlock, isUniqueViolation, prepared, type CallsTable, type DB } from '@mvp/db';
import type { Context } from '../../context';
import { AppError } from '../../errors/AppError';
import { enforceLimit } from '../../rateLimit';
import * as users from '../auth/users.repo';
import { notify } from '../contacts/peopleEvents';
import { blockedBetween } from '../conversations/conversations.service';
import { recordDeviceEvent, recordEvents, StreamWrites } from '../sync/events';
import { iceServersFor } from './iceServers';

type CallRow = Selectable<CallsTable>;
type Device = { userId: string; deviceId: string };
type DurableCallEvent = Exclude<
  TSyncEvent,
  { type: 'resync' | 'presence' | 'typing' | 'call.signal' }
>;

const NOT_FOUND = 'No such call';
/**
 * How far a call id's time (the caller's clock) may be from ours. History pages by id, so ids
 * must sort by time; a device whose clock is further off is told so instead.
 */
const CALL_ID_SKEW_MS = 10 * 60_000;
const LIVE: readonly string[] = ['ringing', 'accepted'];
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
async function myCall(ctx: Context, me: string, id: string): Promise<CallRow> {
  const row = await findCall(ctx, id);
  if (!row || (row.caller_id !== me && row.callee_id !== me))
    throw new AppError('NOT_FOUND', NOT_FOUND);
  return row;
}

/** The milliseconds since the epoch that a UUIDv7 starts with (its first 48 bits). */
function timeOfUuidV7(id: string): number {
  return parseInt(id.slice(0, 8) + id.slice(9, 13), 16);
}

/**
 * Both people's streams, locked in user id order (the order appendEvents takes them in) for the
 * rest of the transaction. A start decides busy and glare from the live calls it reads next, so
 * two starts that involve the same person must not both read before either writes. On SQLite
 * one transaction runs at a time anyway (one connection).
 */
async function lockStreams(ctx: Context, trx: Transaction<DB>, userIds: string[]) {
  if (ctx.ports.dialect !== 'mysql') return;
  await trx
    .selectFrom('user_streams')
    .select('user_id')
    .where('user_id', 'in', userIds)
    .orderBy('user_id')
    .forUpdate()
    .execute();
}

/** The ringing and accepted calls of these people, either side. */
function liveCallsOf(trx: Transaction<DB>, userIds: string[]) {
  return trx
    .selectFrom('calls')
    .selectAll()
    .where('state', 'in', [...LIVE])
    .where((eb) => eb.or([eb('caller_id', 'in', userIds), eb('callee_id', 'in', userIds)]))
    .execute();
}

/**
 * A call's row, or CONFLICT when its (caller-made) id is taken: a retried or reused id. It runs in
 * the placing transaction, so a glare that start ended is rolled back with it.
 */
async function insertCall(trx: Transaction<DB>, row: CallRow): Promise<void> {
  try {
    await trx.insertInto('calls').values(row).execute();
  } catch (err) {
    if (isUniqueViolation(err)) throw new AppError('CONFLICT', 'This call id is taken');
    throw err;
  }
}

function assertPayload(ctx: Context, ciphertexts: string[]): void {
  const max = ctx.settings.calls.maxPayloadBytes;
  if (ciphertexts.some((c) => Buffer.from(c, 'base64').length > max))
    throw new AppError('PAYLOAD_TOO_LARGE', `Call payloads are at most ${max} bytes`);
}

/** The device ids of each of these users, in one query. */
async function devicesOf(ctx: Context, userIds: string[]): Promise<Map<string, string[]>> {
  const rows = await ctx.ports.db
    .selectFrom('devices')
    .select(['id', 'user_id'])
    .where('user_id', 'in', userIds)
    .execute();
  const byUser = new Map(userIds.map((id) => [id, [] as string[]]));
  for (const r of rows) byUser.get(r.user_id)?.push(r.id);
  return byUser;
}

/** Stores `event` for both people's devices and the call's new state, then wakes them. */
async function tellBoth(trx: Transaction<DB>, row: CallRow, now: number, writes: StreamWrites) {
  const event = (viewer: string): DurableCallEvent => ({
    type: 'call.ended',
    call: toCall(row, viewer),
  });
  await recordEvents(trx, [row.caller_id, row.callee_id], event, now, writes);
}

/**
 * Moves a live call to a final state with a conditional update (only from `from`), so of two
 * racing endings exactly one happens: the other gets null and changes nothing.
 */
async function endIn(
  trx: Transaction<DB>,
  row: CallRow,
  change: { from: readonly string[]; state: TCallState; reason: TCallEndReason; now: number },
  writes: StreamWrites,
): Promise<CallRow | null> {
  const { from, state, reason, now } = change;
  const result = await trx
    .updateTable('calls')
    .set({ state, end_reason: reason, ended_at: now })
    .where('id', '=', row.id)
    .where('state', 'in', [...from])
    .executeTakeFirst();
  if (Number(result.numUpdatedRows) !== 1) return null;
  const updated = { ...row, state, end_reason: reason, ended_at: now };
  await tellBoth(trx, updated, now, writes);
  return updated;
}

/**
 * `endIn` in a transaction of its own; the loser of a race gets CONFLICT. The ended row comes
 * back for the caller to show in its own viewer's direction.
 */
async function finish(
  ctx: Context,
  row: CallRow,
  from: readonly string[],
  state: TCallState,
  reason: TCallEndReason,
): Promise<CallRow> {
  const now = ctx.ports.clock.now();
  const writes = new StreamWrites();
  const ended = await ctx.ports.db
    .transaction()
    .execute((trx) => endIn(trx, row, { from, state, reason, now }, writes));
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
  const devices = await devicesOf(ctx, [input.calleeId, me]);
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
  const place = async (trx: Transaction<DB>, writes: StreamWrites): Promise<CallRow> => {
    await lockStreams(ctx, trx, [me, input.calleeId]);
    const live = await liveCallsOf(trx, [me, input.calleeId]);
    const glare = live.find(
      (c) => c.state === 'ringing' && c.caller_id === input.calleeId && c.callee_id === me,
    );
    if (glare) {
      // The smaller user id's call wins; theirs is the one that goes on when they are smaller.
      if (input.calleeId < me) return settleIn(trx, row, 'ended', 'glare', writes);
      const change = { from: ['ringing'], state: 'ended' as const, reason: 'glare' as const, now };
      await endIn(trx, glare, change, writes);
    } else if (live.some((c) => c.caller_id === input.calleeId || c.callee_id === input.calleeId)) {
      return settleIn(trx, row, 'busy', 'user_busy', writes);
    }
    await insertCall(trx, row);
    for (const offer of input.offers) {
      await recordDeviceEvent(
        trx,
        { userId: input.calleeId, deviceId: offer.deviceId },
        {
          type: 'call.invite',
          call: toCall(row, input.calleeId),
          callerDeviceId: device.deviceId,
          offer: offer.ciphertext,
        },
        now,
        writes,
      );
    }
    for (const other of mine) {
      await recordDeviceEvent(
        trx,
        { userId: me, deviceId: other },
        {
          type: 'call.invite',
          call: toCall(row, me),
          callerDeviceId: device.deviceId,
          offer: null,
        },
        now,
        writes,
      );
    }
    return row;
  };
  // Two starts locking the same streams, or a start and a send, may deadlock: written again.
  for (let attempt = 1; ; attempt++) {
    const writes = new StreamWrites();
    try {
      const placed = await ctx.ports.db.transaction().execute((trx) => place(trx, writes));
      await writes.wake(ctx.ports);
      return toCall(placed, me);
    } catch (err) {
      if (!isDeadlock(err) || attempt === 3) throw err;
    }
  }
}

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
  const ringing = await db
    .selectFrom('calls')
    .selectAll()
    .where('callee_id', '=', device.userId)
    .where('state', '=', 'ringing')
    .where('created_at', '>', since)
    .orderBy('created_at')
    .limit(32)
    .execute();
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
    // Written by `recordDeviceEvent` from a validated `call.invite`, so the shape is known.
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

/** A call that ends as it is placed (busy, or the glare it lost): stored and told to both. */
async function settleIn(
  trx: Transaction<DB>,
  row: CallRow,
  state: TCallState,
  reason: TCallEndReason,
  writes: StreamWrites,
): Promise<CallRow> {
  const ended = { ...row, state, end_reason: reason, ended_at: row.created_at };
  await insertCall(trx, ended);
  await tellBoth(trx, ended, row.created_at, writes);
  return ended;
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
  const writes = new StreamWrites();
  const accepted = await ctx.ports.db.transaction().execute(async (trx) => {
    const result = await trx
      .updateTable('calls')
      .set({
        state: 'accepted',
        callee_device_id: device.deviceId,
        accepted_at: now,
        caller_beat_at: now,
        callee_beat_at: now,
      })
      .where('id', '=', row.id)
      .where('state', '=', 'ringing')
      .executeTakeFirst();
    if (Number(result.numUpdatedRows) !== 1) return false;
    await recordDeviceEvent(
      trx,
      { userId: row.caller_id, deviceId: row.caller_device_id },
      { type: 'call.accepted', callId: row.id, deviceId: device.deviceId, answer: input.answer },
      now,
      writes,
    );
    await recordEvents(
      trx,
      [row.callee_id],
      { type: 'call.answered_elsewhere', callId: row.id, deviceId: device.deviceId },
      now,
      writes,
    );
    return true;
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

/** The callee declines: declined everywhere, on every device of both. */
export async function rejectCall(ctx: Context, device: Device, callId: string): Promise<TCall> {
  const row = await myCall(ctx, device.userId, callId);
  if (row.callee_id !== device.userId) throw new AppError('NOT_FOUND', NOT_FOUND);
  return toCall(await finish(ctx, row, ['ringing'], 'rejected', 'user_declined'), device.userId);
}

/** The caller gives up before an answer: a missed call for the callee. */
export async function cancelCall(ctx: Context, device: Device, callId: string): Promise<TCall> {
  const row = await myCall(ctx, device.userId, callId);
  if (row.caller_id !== device.userId) throw new AppError('NOT_FOUND', NOT_FOUND);
  return toCall(await finish(ctx, row, ['ringing'], 'missed', 'user_hangup'), device.userId);
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
      ? cancelCall(ctx, device, row.id)
      : rejectCall(ctx, device, row.id);
  }
  const failed = input.reason === 'ice_failed' || input.reason === 'user_media_failed';
  const ended = await finish(ctx, row, ['accepted'], failed ? 'failed' : 'ended', input.reason);
  return toCall(ended, device.userId);
}

/** The one device of the other person in an answered call, or CONFLICT/NOT_FOUND. */
function peerOf(row: CallRow, device: Device): Device {
  if (row.state !== 'accepted') throw new AppError('CONFLICT', 'This call is not connected');
  if (device.deviceId === row.caller_device_id)
    return { userId: row.callee_id, deviceId: row.callee_device_id! };
  if (device.deviceId === row.callee_device_id)
    return { userId: row.caller_id, deviceId: row.caller_device_id };
  throw new AppError('NOT_FOUND', NOT_FOUND);
}

/**
 * ICE candidates, renegotiation and ICE restarts: encrypted bytes relayed live to the one peer
 * device (ephemeral: never stored), rate limited per call and device.
 */
export async function signal(
  ctx: Context,
  device: Device,
  input: { callId: string; kind: 'candidates' | 'renegotiate' | 'ice-restart'; ciphertext: string },
): Promise<void> {
  await enforceLimit(
    ctx,
    'call-signal',
    ctx.settings.calls.signalLimit,
    `${input.callId}:${device.deviceId}`,
  );
  assertPayload(ctx, [input.ciphertext]);
  const row = await myCall(ctx, device.userId, input.callId);
  const peer = peerOf(row, device);
  await notify(
    ctx.ports.bus,
    peer.userId,
    {
      type: 'call.signal',
      callId: row.id,
      fromDeviceId: device.deviceId,
      kind: input.kind,
      ciphertext: input.ciphertext,
    },
    peer.deviceId,
  );
}

/**
 * Both ends beat every 30 s while connected, each into its own column: a device that dies must
 * not be kept alive by the other side's beats (the call would stay accepted, both people busy).
 * A job ends the call when either side's beats stop.
 */
export async function heartbeat(ctx: Context, device: Device, callId: string): Promise<void> {
  const row = await myCall(ctx, device.userId, callId);
  peerOf(row, device); // only the two devices in the call
  const now = ctx.ports.clock.now();
  const mine =
    device.deviceId === row.caller_device_id ? { caller_beat_at: now } : { callee_beat_at: now };
  await ctx.ports.db
    .updateTable('calls')
    .set(mine)
    .where('id', '=', row.id)
    .where('state', '=', 'accepted')
    .execute();
}

export async function getCall(ctx: Context, me: string, id: string): Promise<TCall> {
  return toCall(await myCall(ctx, me, id), me);
}

/** My calls, newest first (ids are UUIDv7, so they sort by time), paged by `before`. */
export async function callHistory(
  ctx: Context,
  me: string,
  input: { before?: string; limit: number },
) {
  let query = ctx.ports.db
    .selectFrom('calls')
    .selectAll()
    .where((eb) => eb.or([eb('caller_id', '=', me), eb('callee_id', '=', me)]));
  if (input.before) query = query.where('id', '<', input.before);
  const rows = await query
    .orderBy('id', 'desc')
    .limit(input.limit + 1)
    .execute();
  return {
    calls: rows.slice(0, input.limit).map((r) => toCall(r, me)),
    more: rows.length > input.limit,
  };
}

/**
 * The timeout job (one instance at a time): calls ringing past the ring timeout become `missed`
 * (`invite_timeout`); answered calls where either side's heartbeats stopped become `ended`
 * (`ice_timeout`).
 */
export async function expireCalls(ctx: Context): Promise<number> {
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
    const ringing = row.state === 'ringing';
    try {
      await finish(
        ctx,
        row,
        [row.state],
        ringing ? 'missed' : 'ended',
        ringing ? 'invite_timeout' : 'ice_timeout',
      );
      ended++;
    } catch (err) {
      // Ended by one of the two meanwhile: nothing to do.
      if (!(err instanceof AppError && err.appCode === 'CONFLICT')) throw err;
    }
  }
  return ended;
}
