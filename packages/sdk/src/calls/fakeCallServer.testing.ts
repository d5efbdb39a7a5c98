/**
 * An in-memory stand-in for the server's `calls` module and each device's sync stream, with
 * its rules: durable invites per device, first accept wins, answered elsewhere, busy, glare by
 * the smaller user id, signals only between the two devices of an answered call.
 */
import { TRPCClientError } from '@trpc/client';
import type { SyncEvent } from '../messaging';
import type { CallTransport, ServerCall, ServerEndReason } from './transport';

type Row = {
  id: string;
  callerId: string;
  callerDevice: string;
  calleeId: string;
  calleeDevice: string | null;
  media: 'audio' | 'video';
  state: ServerCall['state'];
  endReason: ServerEndReason | null;
  createdAt: number;
  endedAt: number | null;
};
type Handler = (event: SyncEvent) => unknown;

export function serverError(appCode: string) {
  return TRPCClientError.from({
    error: { code: -32000, message: appCode, data: { code: appCode, httpStatus: 409, appCode } },
  });
}

/** `durableDelayMs`: stored events reach devices this late, so live signals can overtake them. */
export function createFakeCallServer(
  options: { durableDelayMs?: number; iceTtlSeconds?: number } = {},
) {
  const calls = new Map<string, Row>();
  const devices = new Map<string, string[]>(); // published devices per user
  const streams = new Map<string, Set<Handler>>(); // per device
  const resyncs = new Map<string, Set<() => unknown>>(); // per device
  const log: { deviceId: string; event: SyncEvent }[] = [];
  /** What has reached the devices' handlers (`log` is what was sent). */
  const delivered: { deviceId: string; event: SyncEvent }[] = [];
  const signals: { from: string; kind: string; ciphertext: string }[] = [];
  let heartbeats = 0;
  let iceFetches = 0;
  const iceTtlSeconds = options.iceTtlSeconds ?? 3600;
  let dropSignals = false;
  let startsHeld: Promise<void> | undefined;
  let heldStarts = 0;

  const view = (row: Row, viewer: string): ServerCall => ({
    id: row.id,
    callerId: row.callerId,
    calleeId: row.calleeId,
    direction: row.callerId === viewer ? 'outgoing' : 'incoming',
    media: row.media,
    state: row.state,
    endReason: row.endReason,
    startedAt: new Date(row.createdAt).toISOString(),
    acceptedAt: null,
    endedAt: row.endedAt === null ? null : new Date(row.endedAt).toISOString(),
    durationSeconds: 0,
  });
  /** Devices whose stream is down: what is sent to them never arrives. */
  const silenced = new Set<string>();
  /** Delivered after the current turn, as over a socket. */
  const deliver = (deviceId: string, event: SyncEvent) => {
    log.push({ deviceId, event });
    if (silenced.has(deviceId)) return;
    const delay = event.type === 'call.signal' ? 1 : (options.durableDelayMs ?? 1);
    setTimeout(() => {
      for (const handler of streams.get(deviceId) ?? []) void handler(event);
      delivered.push({ deviceId, event });
    }, delay);
  };
  const toUser = (userId: string, event: (viewer: string) => SyncEvent) => {
    for (const d of devices.get(userId) ?? []) deliver(d, event(userId));
  };
  const finish = (row: Row, state: Row['state'], reason: ServerEndReason) => {
    if (row.state !== 'ringing' && row.state !== 'accepted') throw serverError('CONFLICT');
    row.state = state;
    row.endReason = reason;
    row.endedAt = Date.now();
    for (const user of [row.callerId, row.calleeId])
      toUser(user, (viewer) => ({ type: 'call.ended', call: view(row, viewer) }));
    return view(row, row.callerId);
  };
  const mine = (id: string, userId: string) => {
    const row = calls.get(id);
    if (!row || (row.callerId !== userId && row.calleeId !== userId))
      throw serverError('NOT_FOUND');
    return row;
  };

  function device(userId: string, deviceId: string, options: { published?: boolean } = {}) {
    if (options.published !== false)
      devices.set(userId, [...(devices.get(userId) ?? []), deviceId]);
    const handlers = new Set<Handler>();
    streams.set(deviceId, handlers);
    const transport: CallTransport = {
      deviceId: async () => deviceId,
      iceServers: async () => {
        iceFetches++;
        return {
          iceServers: [
            { urls: ['stun:stun.test:3478'] },
            { urls: ['turn:turn.test:3478'], username: `fetch-${iceFetches}`, credential: 'x' },
          ],
          ttlSeconds: iceTtlSeconds,
        };
      },
      devices: async (user) => [...(devices.get(user) ?? [])],
      async start(input) {
        if (startsHeld) {
          heldStarts++;
          await startsHeld;
        }
        if (calls.has(input.callId)) throw serverError('CONFLICT');
        const row: Row = {
          id: input.callId,
          callerId: userId,
          callerDevice: deviceId,
          calleeId: input.calleeId,
          calleeDevice: null,
          media: input.media,
          state: 'ringing',
          endReason: null,
          createdAt: Date.now(),
          endedAt: null,
        };
        const live = [...calls.values()].filter(
          (c) => c.state === 'ringing' || c.state === 'accepted',
        );
        const glare = live.find(
          (c) => c.state === 'ringing' && c.callerId === input.calleeId && c.calleeId === userId,
        );
        calls.set(row.id, row);
        if (glare) {
          if (input.calleeId < userId) return finish(row, 'ended', 'glare');
          finish(glare, 'ended', 'glare');
        } else if (
          live.some((c) => c.callerId === input.calleeId || c.calleeId === input.calleeId)
        ) {
          return finish(row, 'busy', 'user_busy');
        }
        for (const offer of input.offers)
          deliver(offer.deviceId, {
            type: 'call.invite',
            call: view(row, input.calleeId),
            callerDeviceId: deviceId,
            offer: offer.ciphertext,
          });
        for (const other of devices.get(userId) ?? [])
          if (other !== deviceId)
            deliver(other, {
              type: 'call.invite',
              call: view(row, userId),
              callerDeviceId: deviceId,
              offer: null,
            });
        return view(row, userId);
      },
      async accept({ callId, answer }) {
        const row = mine(callId, userId);
        if (row.calleeId !== userId) throw serverError('NOT_FOUND');
        if (row.state !== 'ringing') throw serverError('CONFLICT');
        row.state = 'accepted';
        row.calleeDevice = deviceId;
        deliver(row.callerDevice, { type: 'call.accepted', callId, deviceId, answer });
        toUser(userId, () => ({ type: 'call.answered_elsewhere', callId, deviceId }));
        return view(row, userId);
      },
      async reject(callId) {
        const row = mine(callId, userId);
        return finish(row, 'rejected', 'user_declined');
      },
      async hangup(callId, reason) {
        const row = mine(callId, userId);
        if (row.state === 'ringing')
          return row.callerId === userId
            ? finish(row, 'missed', 'user_hangup')
            : finish(row, 'rejected', 'user_declined');
        const failed = reason === 'ice_failed' || reason === 'user_media_failed';
        return finish(row, failed ? 'failed' : 'ended', reason);
      },
      async signal({ callId, kind, ciphertext }) {
        const row = mine(callId, userId);
        if (row.state !== 'accepted') throw serverError('CONFLICT');
        const peer = deviceId === row.callerDevice ? row.calleeDevice : row.callerDevice;
        if (deviceId !== row.callerDevice && deviceId !== row.calleeDevice)
          throw serverError('NOT_FOUND');
        signals.push({ from: deviceId, kind, ciphertext });
        if (dropSignals) return;
        deliver(peer!, { type: 'call.signal', callId, fromDeviceId: deviceId, kind, ciphertext });
      },
      async heartbeat(callId) {
        const row = mine(callId, userId);
        if (row.state !== 'accepted') throw serverError('CONFLICT');
        if (deviceId !== row.callerDevice && deviceId !== row.calleeDevice)
          throw serverError('NOT_FOUND');
        heartbeats++;
      },
      get: async (callId) => view(mine(callId, userId), userId),
      history: async () => ({
        calls: [...calls.values()]
          .filter((c) => c.callerId === userId || c.calleeId === userId)
          .map((c) => view(c, userId)),
        more: false,
      }),
    };
    const resyncHandlers = new Set<() => unknown>();
    resyncs.set(deviceId, resyncHandlers);
    const sync = {
      onEvent(handler: Handler) {
        handlers.add(handler);
        return { unsubscribe: () => void handlers.delete(handler) };
      },
      onResync(handler: () => unknown) {
        resyncHandlers.add(handler);
        return { unsubscribe: () => void resyncHandlers.delete(handler) };
      },
    };
    return { transport, sync };
  }

  return {
    device,
    calls,
    log,
    delivered,
    signals,
    get heartbeats() {
      return heartbeats;
    },
    /** The network between the two devices is gone: signals are accepted, never delivered. */
    dropSignals() {
      dropSignals = true;
    },
    /** How many starts have waited for `holdStarts`' release. */
    get heldStarts() {
      return heldStarts;
    },
    /** Starts wait until the returned function is called, as over a slow network. */
    holdStarts() {
      let release!: () => void;
      startsHeld = new Promise<void>((resolve) => (release = resolve));
      return () => {
        startsHeld = undefined;
        release();
      };
    },
    /** What a hostile server could do: deliver any invite to a device. */
    deliver,
    view,
    /** The server's ring timeout firing. */
    expire(callId: string) {
      finish(calls.get(callId)!, 'missed', 'invite_timeout');
    },
    /** This device's stream goes down: nothing sent to it from now on arrives. */
    silence(deviceId: string) {
      silenced.add(deviceId);
    },
    /** This device's stream comes back unable to resume: what it missed is never sent. */
    resync(deviceId: string) {
      silenced.delete(deviceId);
      for (const handler of resyncs.get(deviceId) ?? []) void handler();
    },
    /** The ring timeout firing while no device's stream is up: nobody hears of it. */
    expireQuietly(callId: string) {
      const row = calls.get(callId)!;
      row.state = 'missed';
      row.endReason = 'invite_timeout';
      row.endedAt = Date.now();
    },
  };
}
