import { z } from 'zod';
import { ZId } from './auth';
import { ZBase64, ZBase64Input } from './bytes';

export const CALL_STATES = [
  'ringing',
  'accepted',
  'ended',
  'missed',
  'rejected',
  'failed',
  'busy',
] as const;
export const ZCallState = z.enum(CALL_STATES);
export type TCallState = z.infer<typeof ZCallState>;
export const ZCallMedia = z.enum(['audio', 'video']);

/**
 * Why a call ended, after Matrix's hangup reasons: `user_hangup` (either side, or the caller
 * cancelling), `user_declined`, `invite_timeout` (nobody answered), `user_busy`, `ice_failed`,
 * `ice_timeout` (heartbeats stopped), `user_media_failed`, `glare` (both called at once; the
 * other call went on), `answered_elsewhere` is not a reason: it is an event to the other devices.
 */
export const ZCallEndReason = z.enum([
  'user_hangup',
  'user_declined',
  'invite_timeout',
  'user_busy',
  'ice_failed',
  'ice_timeout',
  'user_media_failed',
  'glare',
  'unknown_error',
]);
export type TCallEndReason = z.infer<typeof ZCallEndReason>;

export const ZCall = z.object({
  id: z.string(),
  callerId: z.string(),
  calleeId: z.string(),
  /** From my side. */
  direction: z.enum(['outgoing', 'incoming']),
  media: ZCallMedia,
  state: ZCallState,
  endReason: ZCallEndReason.nullable(),
  startedAt: z.iso.datetime(),
  acceptedAt: z.iso.datetime().nullable(),
  endedAt: z.iso.datetime().nullable(),
  /** Talking time (accepted to ended), 0 when never accepted. */
  durationSeconds: z.number().int(),
});
export type TCall = z.infer<typeof ZCall>;

export const ZIceServers = z.object({
  iceServers: z.array(
    z.object({
      urls: z.array(z.string()),
      username: z.string().optional(),
      credential: z.string().optional(),
    }),
  ),
  /** How long the TURN credentials last (seconds). */
  ttlSeconds: z.number().int(),
});

/** Encrypted to one device with its pairwise session: the server relays bytes it cannot read. */
const ZDevicePayload = z.object({ deviceId: ZId, ciphertext: ZBase64Input });

export const ZStartCallInput = z.object({
  /**
   * The call's id, made by the caller (a UUIDv7 from its clock) so that each sealed offer can
   * name the call it belongs to: the callee's device refuses an offer moved into another call.
   */
  callId: z.stringFormat(
    'uuid',
    /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
    { error: 'not a lower-case UUIDv7 (see ZId)' },
  ),
  calleeId: ZId,
  media: ZCallMedia,
  /** One encrypted offer per callee device that should ring. */
  offers: z.array(ZDevicePayload).min(1).max(32),
});
export const ZCallIdInput = z.object({ callId: ZId });
export const ZAcceptCallInput = z.object({
  callId: ZId,
  /** The encrypted answer, for the caller's device. */
  answer: ZBase64Input,
});
/**
 * The reasons a participant may give. The others are the server's findings (a decline, a
 * timeout, busy, glare): a client naming them would write a false outcome into both histories.
 */
export const ZHangupReason = ZCallEndReason.extract([
  'user_hangup',
  'ice_failed',
  'ice_timeout',
  'user_media_failed',
  'unknown_error',
]);
export type THangupReason = z.infer<typeof ZHangupReason>;
export const ZHangupInput = z.object({
  callId: ZId,
  reason: ZHangupReason.default('user_hangup'),
});
export const ZCallSignalInput = z.object({
  callId: ZId,
  kind: z.enum(['candidates', 'renegotiate', 'ice-restart']),
  ciphertext: ZBase64Input,
});
export const ZCallHistoryInput = z.object({
  /** Older than this call id (ids sort by time). */
  before: ZId.optional(),
  limit: z.coerce.number().int().min(1).max(100).default(30),
});

/**
 * A call ringing this device, as `sync.snapshot` lists it: what its `call.invite` carried, so a
 * device that starts cold (no cursor) rings for a call placed before it connected.
 */
export const ZRingingCall = z.object({
  call: ZCall,
  callerDeviceId: z.string(),
  /** The caller's offer, encrypted to this device. */
  offer: ZBase64,
});
export type TRingingCall = z.infer<typeof ZRingingCall>;

/** Call events on the sync stream. */
export const ZCallEvent = z.discriminatedUnion('type', [
  /** Durable, to each callee device (with its own offer) and the caller's other devices (no offer). */
  z.object({
    type: z.literal('call.invite'),
    call: ZCall,
    callerDeviceId: z.string(),
    offer: ZBase64.nullable(),
  }),
  /** Durable, to the caller's calling device: the answer and the one peer device. */
  z.object({
    type: z.literal('call.accepted'),
    callId: z.string(),
    deviceId: z.string(),
    answer: ZBase64,
  }),
  /** Durable, to the callee's devices: `deviceId` answered; the others stop ringing. */
  z.object({
    type: z.literal('call.answered_elsewhere'),
    callId: z.string(),
    deviceId: z.string(),
  }),
  /** Durable, to every device of both people. */
  z.object({ type: z.literal('call.ended'), call: ZCall }),
  /** Ephemeral, to the one peer device in the call. */
  z.object({
    type: z.literal('call.signal'),
    callId: z.string(),
    fromDeviceId: z.string(),
    kind: z.enum(['candidates', 'renegotiate', 'ice-restart']),
    ciphertext: ZBase64,
  }),
]);
