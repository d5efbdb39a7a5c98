import { createServer, type Server } from 'node:http';
import { listenOnLoopback } from './baselines';
import { WebSocketServer, type WebSocket } from 'ws';
import { frameText } from './wsLoad';

/**
 * The raw call signalling relay: the least a signalling server must do, speaking just enough of
 * tRPC's WebSocket protocol that the load cannot tell it from the MVP server. A socket names its
 * device with the `connectionParams` token; a `sync.events` subscription registers the socket for
 * that device; `calls.start`, `calls.accept`, `calls.signal` and `calls.hangup` mutations are
 * parsed, the call kept in a Map, and the MVP's events (same fields, same order, so the same
 * sizes) written to the peer's subscribed sockets, then the mutation answered with the MVP's
 * answer shape. Nothing is stored but that Map; no busy, glare, block or device checks.
 */
export type SignallingBaselinePayload = {
  /** token → the account and its one device. */
  devices: Record<string, { userId: string; deviceId: string }>;
};

type Input = {
  calleeId: string;
  media: string;
  offers: { deviceId: string; ciphertext: string }[];
  callId: string;
  answer: string;
  kind: string;
  ciphertext: string;
  reason: string;
};

type Incoming =
  | { method: 'connectionParams'; data: { token: string } }
  | { id: number; method: 'subscription'; params: { path: string } }
  | { id: number; method: 'mutation'; params: { path: string; input: { json: Input } } };

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

export async function startSignallingBaseline(payload: SignallingBaselinePayload) {
  /** device id → its subscribed sockets and their subscription ids. */
  const subscribed = new Map<string, Map<WebSocket, number>>();
  const devicesOf = new Map<string, string[]>();
  for (const { userId, deviceId } of Object.values(payload.devices))
    devicesOf.set(userId, [...(devicesOf.get(userId) ?? []), deviceId]);
  /** Each user's stream position: durable events take the next one, ephemeral ones repeat it. */
  const seqOf = new Map<string, number>();
  const calls = new Map<string, CallRow>();

  /** An event (JSON) to every subscribed socket of one device, as stream entry `seq`. */
  const deliver = (deviceId: string, eventJson: string, seq: number) => {
    for (const [target, subscriptionId] of subscribed.get(deviceId) ?? []) {
      target.send(
        `{"id":${subscriptionId},"result":{"type":"data","data":{"json":{"id":"${seq}","data":${eventJson}}},"id":"${seq}"}}`,
      );
    }
  };
  const nextSeq = (userId: string) => {
    const seq = (seqOf.get(userId) ?? 0) + 1;
    seqOf.set(userId, seq);
    return seq;
  };
  const toDevice = (userId: string, deviceId: string, event: unknown) =>
    deliver(deviceId, JSON.stringify(event), nextSeq(userId));
  const toUser = (userId: string, event: unknown) => {
    const seq = nextSeq(userId);
    const json = JSON.stringify(event);
    for (const deviceId of devicesOf.get(userId) ?? []) deliver(deviceId, json, seq);
  };
  const ephemeral = (userId: string, deviceId: string, event: unknown) =>
    deliver(deviceId, JSON.stringify(event), seqOf.get(userId) ?? 0);

  type Me = { userId: string; deviceId: string };
  /** Runs one mutation: answers its result, or throws a message for an error frame. */
  const mutations: Record<string, (me: Me, input: Input) => unknown> = {
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

  const server: Server = createServer((_req, res) => res.writeHead(404).end());
  const wss = new WebSocketServer({ server, path: '/trpc', perMessageDeflate: false });
  wss.on('connection', (socket) => {
    let me: Me | undefined;
    const fail = (id: number | null, message: string) =>
      socket.send(JSON.stringify({ id, error: { message } }));
    socket.on('close', () => {
      if (me) subscribed.get(me.deviceId)?.delete(socket);
    });
    socket.on('message', (data) => {
      const text = frameText(data);
      if (text === 'PONG') return;
      const message = JSON.parse(text) as Incoming;
      if (message.method === 'connectionParams') {
        me = payload.devices[message.data.token];
        return;
      }
      if (!me) return fail(message.id, 'unauthorized');
      if (message.method === 'subscription') {
        let sockets = subscribed.get(me.deviceId);
        if (!sockets) subscribed.set(me.deviceId, (sockets = new Map<WebSocket, number>()));
        sockets.set(socket, message.id);
        socket.send(`{"id":${message.id},"result":{"type":"started"}}`);
        return;
      }
      const run = mutations[message.params.path];
      if (!run) return fail(message.id, `no such procedure ${message.params.path}`);
      let result: unknown;
      try {
        result = run(me, message.params.input.json);
      } catch (err) {
        return fail(message.id, (err as Error).message);
      }
      socket.send(
        `{"id":${message.id},"result":{"type":"data","data":{"json":${JSON.stringify(result)}}}}`,
      );
    });
  });

  const { wsUrl, close } = await listenOnLoopback(server, wss);
  return { wsUrl, close };
}
