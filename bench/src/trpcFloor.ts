import { createServer, type Server } from 'node:http';
import { initTRPC, tracked, TRPCError, type AnyRouter } from '@trpc/server';
import { applyWSSHandler, jsonEncoder } from '@trpc/server/adapters/ws';
import { WebSocketServer } from 'ws';
import { encodeFrame, share, transformer } from '@mvp/api';
import { ZSyncEventsInput } from '@mvp/contracts';
import { burstWrites } from '@mvp/server';
import { listenOnLoopback } from './baselines';

/**
 * tRPC's floor: a baseline's work served through tRPC the way the MVP serves it (tRPC's
 * WebSocket adapter, the MVP's transformer, frame encoder and zod schemas, `tracked` events from
 * a `sync.events` async generator, corked socket writes), without anything of the MVP's own
 * (its middleware: sessions, limits, metrics, logging; the database, durable streams). What it
 * adds to the raw baseline is what tRPC itself costs the MVP.
 *
 * `Me` is what a connection's token names; `key(me)` the stream it reads (a user or a device).
 */
type Entry = { seq: number; event: object };
type Reader = { queue: Entry[]; wake?: () => void };

export function createFloor<Me extends object>(
  tokens: Record<string, Me>,
  key: (me: Me) => string,
) {
  /** stream key → its subscriptions' queues. */
  const readers = new Map<string, Set<Reader>>();
  /** One stream entry to these streams' subscriptions; the event is serialised once. */
  const deliver = (keys: readonly string[], seq: number | readonly number[], event: object) => {
    const shared = share(event);
    keys.forEach((k, i) => {
      for (const reader of readers.get(k) ?? []) {
        reader.queue.push({ seq: typeof seq === 'number' ? seq : seq[i]!, event: shared });
        const wake = reader.wake;
        reader.wake = undefined;
        wake?.();
      }
    });
  };

  const t = initTRPC.context<{ me: Me | undefined }>().create({ transformer });
  const authed = t.procedure.use(({ ctx, next }) => {
    if (!ctx.me) throw new TRPCError({ code: 'UNAUTHORIZED' });
    return next({ ctx: { me: ctx.me } });
  });
  type Schema = Parameters<typeof authed.input>[0];
  /** A mutation behind the MVP's input and output schemas; a thrown Error answers CONFLICT. */
  const mutation = (input: Schema, output: Schema, run: (me: Me, input: object) => object) =>
    authed
      .input(input)
      .output(output)
      .mutation(({ ctx, input }) => {
        try {
          return run(ctx.me, input as object) as never;
        } catch (err) {
          throw new TRPCError({ code: 'CONFLICT', message: (err as Error).message });
        }
      });
  const events = authed.input(ZSyncEventsInput).subscription(async function* ({ ctx, signal }) {
    const reader: Reader = { queue: [] };
    const k = key(ctx.me);
    let mine = readers.get(k);
    if (!mine) readers.set(k, (mine = new Set()));
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
  });

  /** Serves `router` (its `sync.events` being `events`) on a loopback port. */
  const serve = async (router: AnyRouter) => {
    const server: Server = createServer((_req, res) => res.writeHead(404).end());
    const wss = new WebSocketServer({ server, path: '/trpc', perMessageDeflate: false });
    // Before tRPC's own listener, so that its frames are corked too.
    wss.on('connection', (ws, req) => burstWrites(ws, req.socket));
    applyWSSHandler({
      wss,
      router,
      createContext: ({ info }) => {
        const token = info.connectionParams?.token;
        return { me: typeof token === 'string' ? tokens[token] : undefined };
      },
      experimental_encoder: { encode: encodeFrame, decode: (data) => jsonEncoder.decode(data) },
    });
    const { wsUrl, close } = await listenOnLoopback(server, wss);
    return { wsUrl, close };
  };

  return { t, mutation, events, deliver, serve };
}
