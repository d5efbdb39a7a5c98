import { createServer, type Server } from 'node:http';
import { initTRPC, tracked, TRPCError } from '@trpc/server';
import { applyWSSHandler, jsonEncoder } from '@trpc/server/adapters/ws';
import { WebSocketServer } from 'ws';
import { encodeFrame, share, transformer } from '@mvp/api';
import { burstWrites } from '@mvp/server';
import {
  ZAcceptCallInput,
  ZCall,
  ZCallSignalInput,
  ZHangupInput,
  ZOk,
  ZStartCallInput,
  ZSyncEventsInput,
} from '@mvp/contracts';
import { listenOnLoopback } from './baselines';
import type { SignallingBaselinePayload } from './signallingBaseline';
import { createCallRelay, type RelayDevice, type RelayInput } from './signallingRelay';

/**
 * The tRPC floor of call signalling: the raw relay's work (signallingRelay.ts: a Map, no storage,
 * no checks) served through tRPC the way the MVP server serves it: tRPC's WebSocket adapter, the
 * MVP's transformer and frame encoder (a shared event's JSON written once), the MVP's zod input
 * and output schemas, `tracked` events from a `sync.events` async generator, the MVP's corked
 * socket writes (burstWrites). What it adds to the raw relay is what tRPC itself costs the MVP;
 * what the MVP adds to it is the MVP's own work (its middleware: sessions, limits, metrics,
 * logging; the database and durable streams).
 */
type Entry = { seq: number; event: object };
type Reader = { queue: Entry[]; wake?: () => void };

export async function startSignallingFloor(payload: SignallingBaselinePayload) {
  /** device id → its subscriptions' queues. */
  const readers = new Map<string, Set<Reader>>();
  const mutations = createCallRelay(Object.values(payload.devices), (deviceIds, seq, event) => {
    const shared = share(event);
    for (const deviceId of deviceIds) {
      for (const reader of readers.get(deviceId) ?? []) {
        reader.queue.push({ seq, event: shared });
        const wake = reader.wake;
        reader.wake = undefined;
        wake?.();
      }
    }
  });

  const t = initTRPC.context<{ me: RelayDevice | undefined }>().create({ transformer });
  const authed = t.procedure.use(({ ctx, next }) => {
    if (!ctx.me) throw new TRPCError({ code: 'UNAUTHORIZED' });
    return next({ ctx: { me: ctx.me } });
  });
  const relay = (path: string, me: RelayDevice, input: object) => {
    try {
      return mutations[path]!(me, input as RelayInput);
    } catch (err) {
      throw new TRPCError({ code: 'CONFLICT', message: (err as Error).message });
    }
  };
  type Schema = Parameters<typeof authed.input>[0];
  /** A relay mutation behind the MVP's input and output schemas for it. */
  const mutation = (path: string, input: Schema, output: Schema) =>
    authed
      .input(input)
      .output(output)
      .mutation(({ ctx, input }) => relay(path, ctx.me, input as object) as never);
  const router = t.router({
    calls: t.router({
      start: mutation('calls.start', ZStartCallInput, ZCall),
      accept: mutation('calls.accept', ZAcceptCallInput, ZCall),
      signal: mutation('calls.signal', ZCallSignalInput, ZOk),
      hangup: mutation('calls.hangup', ZHangupInput, ZCall),
    }),
    sync: t.router({
      events: authed.input(ZSyncEventsInput).subscription(async function* ({ ctx, signal }) {
        const reader: Reader = { queue: [] };
        let mine = readers.get(ctx.me.deviceId);
        if (!mine) readers.set(ctx.me.deviceId, (mine = new Set()));
        mine.add(reader);
        const stop = () => reader.wake?.();
        signal?.addEventListener('abort', stop, { once: true });
        try {
          while (!signal?.aborted) {
            const next = reader.queue.shift();
            if (next) yield tracked(String(next.seq), next.event);
            else await new Promise<void>((resolve) => (reader.wake = resolve));
          }
        } finally {
          signal?.removeEventListener('abort', stop);
          mine.delete(reader);
        }
      }),
    }),
  });

  const server: Server = createServer((_req, res) => res.writeHead(404).end());
  const wss = new WebSocketServer({ server, path: '/trpc', perMessageDeflate: false });
  // Before tRPC's own listener, so that its frames are corked too.
  wss.on('connection', (ws, req) => burstWrites(ws, req.socket));
  applyWSSHandler({
    wss,
    router,
    createContext: ({ info }) => {
      const token = info.connectionParams?.token;
      return { me: typeof token === 'string' ? payload.devices[token] : undefined };
    },
    experimental_encoder: { encode: encodeFrame, decode: (data) => jsonEncoder.decode(data) },
  });
  const { wsUrl, close } = await listenOnLoopback(server, wss);
  return { wsUrl, close };
}
