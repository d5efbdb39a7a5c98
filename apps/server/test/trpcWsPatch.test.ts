import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { initTRPC, tracked, TRPCError } from '@trpc/server';
import { applyWSSHandler } from '@trpc/server/adapters/ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import { eventQueue } from './helpers/collect';

/**
 * Pins what our patch to tRPC's WebSocket adapter (patches/README.md: the subscription loop
 * awaits each item through one promise instead of an Unpromise.race) must keep doing: items in
 * order under their tracked ids, a stop that ends the loop even while the procedure is still
 * waiting for its next item (and sends nothing that item would have carried), a procedure's
 * error as an error frame. A bare router, no MVP code: this is tRPC's adapter under test.
 */

/** Items the test hands to the procedure one by one; the procedure ignores its signal. */
function feed() {
  const items: number[] = [];
  let waiter: ((n: number) => void) | undefined;
  return {
    push(n: number) {
      const resolve = waiter;
      waiter = undefined;
      if (resolve) resolve(n);
      else items.push(n);
    },
    next: (): Promise<number> =>
      items.length > 0
        ? Promise.resolve(items.shift()!)
        : new Promise((resolve) => (waiter = resolve)),
  };
}

const feeds = new Map<string, ReturnType<typeof feed>>();
const stopped = new Map<string, Promise<void>>();
const finished = new Set<string>();

const t = initTRPC.create();
const router = t.router({
  count: t.procedure.subscription(async function* ({ signal }) {
    for (let i = 1; i <= 500; i++) yield tracked(String(i), i);
    void signal;
  }),
  fed: t.procedure
    .input((raw) => raw as { key: string })
    .subscription(async function* ({ input, signal }) {
      const source = feeds.get(input.key)!;
      stopped.set(
        input.key,
        new Promise<void>((resolve) => signal!.addEventListener('abort', () => resolve())),
      );
      try {
        for (;;) {
          const n = await source.next();
          if (n < 0) throw new TRPCError({ code: 'BAD_REQUEST', message: 'negative' });
          yield tracked(String(n), n);
        }
      } finally {
        finished.add(input.key);
      }
    }),
});

type Frame = {
  id: number | null;
  result?: { type: string; id?: string; data?: unknown };
  error?: { data?: { code?: string } };
};

describe("tRPC's WebSocket adapter as patched", () => {
  let wss: WebSocketServer;
  let url: string;
  beforeAll(async () => {
    wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await once(wss, 'listening');
    applyWSSHandler({ wss, router });
    url = `ws://127.0.0.1:${(wss.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    for (const client of wss.clients) client.terminate();
    await new Promise((resolve) => wss.close(resolve));
  });

  async function connect() {
    const socket = new WebSocket(url);
    const frames = eventQueue<Frame>();
    socket.on('message', (data) =>
      frames.push(JSON.parse((data as Buffer).toString('utf8')) as Frame),
    );
    await once(socket, 'open');
    const send = (frame: object) => socket.send(JSON.stringify(frame));
    /** The frames of one request id, the others dropped. */
    const nextOf = async (id: number) => {
      for (;;) {
        const frame = await frames.next();
        if (frame.id === id) return frame;
      }
    };
    return { socket, send, nextOf };
  }

  it('yields every item in order under its tracked id, then stopped', async () => {
    const { socket, send, nextOf } = await connect();
    send({ id: 1, method: 'subscription', params: { path: 'count', input: null } });
    expect((await nextOf(1)).result?.type).toBe('started');
    for (let i = 1; i <= 500; i++) {
      const frame = await nextOf(1);
      expect(frame.result).toEqual({
        type: 'data',
        id: String(i),
        data: { id: String(i), data: i },
      });
    }
    expect((await nextOf(1)).result?.type).toBe('stopped');
    socket.close();
  });

  it('a stop ends a subscription that is waiting, and what it was waiting for is not sent', async () => {
    const { socket, send, nextOf } = await connect();
    const source = feed();
    feeds.set('waiting', source);
    const other = feed();
    feeds.set('other', other);
    send({ id: 1, method: 'subscription', params: { path: 'fed', input: { key: 'waiting' } } });
    send({ id: 2, method: 'subscription', params: { path: 'fed', input: { key: 'other' } } });
    expect((await nextOf(1)).result?.type).toBe('started');
    expect((await nextOf(2)).result?.type).toBe('started');
    source.push(1);
    expect((await nextOf(1)).result?.id).toBe('1');

    send({ id: 1, method: 'subscription.stop' });
    await stopped.get('waiting');
    // The procedure is still waiting for its next item; the loop must not send it once it comes.
    source.push(2);
    expect(await nextOf(1)).toMatchObject({ result: { type: 'stopped' } });
    expect(finished.has('waiting')).toBe(true);

    // The other subscription on the same socket goes on.
    other.push(7);
    expect((await nextOf(2)).result).toMatchObject({ type: 'data', id: '7' });
    expect(finished.has('other')).toBe(false);
    socket.close();
  });

  it("a procedure's error ends the subscription with an error frame", async () => {
    const { socket, send, nextOf } = await connect();
    const source = feed();
    feeds.set('failing', source);
    send({ id: 5, method: 'subscription', params: { path: 'fed', input: { key: 'failing' } } });
    expect((await nextOf(5)).result?.type).toBe('started');
    source.push(3);
    expect((await nextOf(5)).result?.id).toBe('3');
    source.push(-1);
    expect((await nextOf(5)).error?.data?.code).toBe('BAD_REQUEST');
    expect(finished.has('failing')).toBe(true);
    socket.close();
  });
});
