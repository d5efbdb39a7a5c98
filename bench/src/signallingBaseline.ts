import { createServer, type Server } from 'node:http';
import { listenOnLoopback } from './baselines';
import { WebSocketServer, type WebSocket } from 'ws';
import {
  createCallRelay,
  type Deliver,
  type RelayDevice,
  type RelayInput,
} from './signallingRelay';
import { frameText } from './wsLoad';

/**
 * The raw call signalling relay: the least a signalling server must do, speaking just enough of
 * tRPC's WebSocket protocol that the load cannot tell it from the MVP server. A socket names its
 * device with the `connectionParams` token; a `sync.events` subscription registers the socket for
 * that device; `calls.start`, `calls.accept`, `calls.signal` and `calls.hangup` mutations are
 * parsed and run by the shared relay (signallingRelay.ts), its events written to the peer's
 * subscribed sockets, then the mutation answered with the MVP's answer shape.
 */
export type SignallingBaselinePayload = {
  /** token → the account and its one device. */
  devices: Record<string, { userId: string; deviceId: string }>;
};

type Incoming =
  | { method: 'connectionParams'; data: { token: string } }
  | { id: number; method: 'subscription'; params: { path: string } }
  | { id: number; method: 'mutation'; params: { path: string; input: { json: RelayInput } } };

export async function startSignallingBaseline(payload: SignallingBaselinePayload) {
  /** device id → its subscribed sockets and their subscription ids. */
  const subscribed = new Map<string, Map<WebSocket, number>>();
  /** An event to every subscribed socket of these devices, as stream entry `seq`. */
  const deliver: Deliver = (deviceIds, seq, event) => {
    const eventJson = JSON.stringify(event);
    for (const deviceId of deviceIds) {
      for (const [target, subscriptionId] of subscribed.get(deviceId) ?? []) {
        target.send(
          `{"id":${subscriptionId},"result":{"type":"data","data":{"json":{"id":"${seq}","data":${eventJson}}},"id":"${seq}"}}`,
        );
      }
    }
  };
  const mutations = createCallRelay(Object.values(payload.devices), deliver);

  const server: Server = createServer((_req, res) => res.writeHead(404).end());
  const wss = new WebSocketServer({ server, path: '/trpc', perMessageDeflate: false });
  wss.on('connection', (socket) => {
    let me: RelayDevice | undefined;
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
