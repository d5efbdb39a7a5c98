import type { Context } from '../../context';
import { AppError } from '../../errors/AppError';
import { enforceLimit } from '../../rateLimit';
import { notify } from '../contacts/peopleEvents';
import { assertPayload, myCall, NOT_FOUND, type CallRow, type Device } from './calls.service';

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
