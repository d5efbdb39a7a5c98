/**
 * The call relay both signalling baselines share (the raw `ws` relay and the tRPC floor): calls
 * kept in a Map, and the events each mutation causes, with the MVP's fields in the MVP's order
 * (so the same sizes), each written to devices through `deliver`. Nothing is stored but the Map;
 * no busy, glare, block or device checks.
 */
export type RelayDevice = { userId: string; deviceId: string };

export type RelayInput = {
  calleeId: string;
  media: string;
  offers: { deviceId: string; ciphertext: string }[];
  callId: string;
  answer: string;
  kind: string;
  ciphertext: string;
  reason: string;
};

/** One stream entry to the sockets of these devices: `seq` is the user's stream position. */
export type Deliver = (deviceIds: readonly string[], seq: number, event: object) => void;

export type RelayMutation = (me: RelayDevice, input: RelayInput) => object;

type CallRow = {
  id: string;
  callerId: string;
  callerDeviceId: string;
  calleeId: string;
  calleeDeviceId: string | null;
  media: string;
  state: string;
  endReason: string | null;
  createdAt: number;
  acceptedAt: number | null;
  endedAt: number | null;
};

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

/** The call as the MVP server describes it to `viewer` (same members, same order). */
function toCall(row: CallRow, viewer: string) {
  return {
    id: row.id,
    callerId: row.callerId,
    calleeId: row.calleeId,
    direction: row.callerId === viewer ? 'outgoing' : 'incoming',
    media: row.media,
    state: row.state,
    endReason: row.endReason,
    startedAt: iso(row.createdAt),
    acceptedAt: iso(row.acceptedAt),
    endedAt: iso(row.endedAt),
    durationSeconds:
      row.acceptedAt !== null && row.endedAt !== null
        ? Math.round((row.endedAt - row.acceptedAt) / 1000)
        : 0,
  };
}

/**
 * The four mutations of a setup by procedure path. Each answers its result or throws an Error
 * whose message the relay answers in an error frame.
 */
export function createCallRelay(
  devices: Iterable<RelayDevice>,
  deliver: Deliver,
): Record<string, RelayMutation> {
  const devicesOf = new Map<string, string[]>();
  for (const { userId, deviceId } of devices)
    devicesOf.set(userId, [...(devicesOf.get(userId) ?? []), deviceId]);
  /** Each user's stream position: durable events take the next one, ephemeral ones repeat it. */
  const seqOf = new Map<string, number>();
  const calls = new Map<string, CallRow>();

  const nextSeq = (userId: string) => {
    const seq = (seqOf.get(userId) ?? 0) + 1;
    seqOf.set(userId, seq);
    return seq;
  };
  const toDevice = (userId: string, deviceId: string, event: object) =>
    deliver([deviceId], nextSeq(userId), event);
  const toUser = (userId: string, event: object) =>
    deliver(devicesOf.get(userId) ?? [], nextSeq(userId), event);
  const ephemeral = (userId: string, deviceId: string, event: object) =>
    deliver([deviceId], seqOf.get(userId) ?? 0, event);

  return {
    'calls.start'(me, input) {
      const row: CallRow = {
        id: input.callId,
        callerId: me.userId,
        callerDeviceId: me.deviceId,
        calleeId: input.calleeId,
        calleeDeviceId: null,
        media: input.media,
        state: 'ringing',
        endReason: null,
        createdAt: Date.now(),
        acceptedAt: null,
        endedAt: null,
      };
      calls.set(row.id, row);
      for (const offer of input.offers) {
        toDevice(input.calleeId, offer.deviceId, {
          type: 'call.invite',
          call: toCall(row, input.calleeId),
          callerDeviceId: me.deviceId,
          offer: offer.ciphertext,
        });
      }
      return toCall(row, me.userId);
    },
    'calls.accept'(me, input) {
      const row = calls.get(input.callId);
      if (!row || row.calleeId !== me.userId || row.state !== 'ringing')
        throw new Error('This call is no longer ringing');
      row.state = 'accepted';
      row.calleeDeviceId = me.deviceId;
      row.acceptedAt = Date.now();
      toDevice(row.callerId, row.callerDeviceId, {
        type: 'call.accepted',
        callId: row.id,
        deviceId: me.deviceId,
        answer: input.answer,
      });
      toUser(row.calleeId, {
        type: 'call.answered_elsewhere',
        callId: row.id,
        deviceId: me.deviceId,
      });
      return toCall(row, me.userId);
    },
    'calls.signal'(me, input) {
      const row = calls.get(input.callId);
      if (!row || row.state !== 'accepted') throw new Error('This call is not connected');
      const [peerId, peerDevice] =
        me.deviceId === row.callerDeviceId
          ? [row.calleeId, row.calleeDeviceId!]
          : [row.callerId, row.callerDeviceId];
      ephemeral(peerId, peerDevice, {
        type: 'call.signal',
        callId: row.id,
        fromDeviceId: me.deviceId,
        kind: input.kind,
        ciphertext: input.ciphertext,
      });
      return { ok: true };
    },
    'calls.hangup'(me, input) {
      const row = calls.get(input.callId);
      if (!row || row.state !== 'accepted') throw new Error('This call has already ended');
      row.state = 'ended';
      row.endReason = input.reason;
      row.endedAt = Date.now();
      calls.delete(row.id);
      for (const userId of [row.callerId, row.calleeId])
        toUser(userId, { type: 'call.ended', call: toCall(row, userId) });
      return toCall(row, me.userId);
    },
  };
}
