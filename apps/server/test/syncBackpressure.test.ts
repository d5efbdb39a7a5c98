import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import WebSocket from 'ws';
import {
  appRouter,
  createCallerFactory,
  createContext,
  type Connection,
  type Context,
} from '@mvp/api';
import type { TSyncEvent } from '@mvp/contracts';
import { defaultConfig } from '../src/index';
import { befriend, clientWithToken, registerUser, type Account } from './helpers/accounts';
import { backendLabel } from './helpers/env';
import { sendText } from './helpers/messaging';
import { startServer, type TestServer } from './helpers/startServer';
import { eventQueue } from './helpers/collect';

const METRICS_TOKEN = 'metrics-token-backpressure-0123';
const BUFFER_BYTES = 64 * 1024;

/**
 * tRPC writes a subscription's items as they come, with no flow control: a stream that did not
 * wait for its reader would queue a slow device's whole backlog in the server's memory. These
 * tests pin that it waits, that what it holds while waiting stays bounded, and that nothing is
 * lost or repeated once the reader catches up.
 */
describe(`an event stream and a slow reader (${backendLabel})`, () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startServer({
      metricsToken: METRICS_TOKEN,
      messaging: { ...defaultConfig().messaging, streamBufferBytes: BUFFER_BYTES },
    });
  });
  afterAll(() => t.stop());

  const api = (token: string) => clientWithToken(t, token).api;
  const directChat = async () => {
    const [alice, bob] = [await registerUser(t), await registerUser(t)];
    await befriend(t, alice, bob);
    const chat = await api(alice.accessToken).conversations.create.mutate({
      kind: 'direct',
      userId: bob.userId,
    });
    const cursor = (await api(bob.accessToken).sync.snapshot.query()).cursor;
    return { alice, bob, chat, cursor };
  };
  const waitingGauge = async () => {
    const res = await fetch(`${t.server.url}/metrics`, {
      headers: { authorization: `Bearer ${METRICS_TOKEN}` },
    });
    return Number(/^mvp_sync_streams_waiting (\d+)$/m.exec(await res.text())?.[1]);
  };
  /** Resolves the next time a stream starts waiting for its reader. */
  const nextWait = () => {
    const metrics = t.server.infra.ports.metrics;
    const original = metrics.streamWaiting.bind(metrics);
    return new Promise<void>((resolve) => {
      metrics.streamWaiting = (waiting) => {
        original(waiting);
        if (!waiting) return;
        metrics.streamWaiting = original;
        resolve();
      };
    });
  };

  it('waits while the socket is full, then delivers the whole backlog once, in order', async () => {
    const { alice, bob, chat, cursor } = await directChat();
    // Far more than the kernel's socket buffers hold on loopback (a few MiB), so the server's
    // own buffer fills while the device reads nothing.
    const count = 200;
    const body = 'x'.repeat(60 * 1024);
    const seqs: number[] = [];
    for (let i = 0; i < count; i += 20) {
      const sent = await Promise.all(
        Array.from({ length: Math.min(20, count - i) }, () => sendText(t, alice, chat.id, body)),
      );
      seqs.push(...sent.map((m) => m.seq));
    }
    seqs.sort((a, b) => a - b);

    const sockets: WebSocket[] = [];
    class PausedOnOpen extends WebSocket {
      constructor(...args: ConstructorParameters<typeof WebSocket>) {
        super(...args);
        sockets.push(this);
        this.once('open', () => this.pause());
      }
    }
    const waited = nextWait();
    const reader = t.newClient({ getToken: () => bob.accessToken, WebSocket: PausedOnOpen });
    const events = eventQueue<{ id: string; event: TSyncEvent }>();
    reader.api.sync.events.subscribe(
      { lastEventId: cursor },
      { onData: (tracked) => events.push({ id: tracked.id, event: tracked.data }) },
    );
    await waited;
    expect(await waitingGauge()).toBe(1);

    sockets[0]!.resume();
    const delivered: number[] = [];
    const ids: string[] = [];
    while (delivered.length < count) {
      const got = await events.next(20_000);
      ids.push(got.id);
      if (got.event.type === 'message.new' && got.event.message.conversationId === chat.id)
        delivered.push(got.event.message.seq);
    }
    expect(delivered).toEqual(seqs);
    expect(new Set(ids).size).toBe(ids.length);
    // A live message after the backlog comes too: the stream left its wait for good.
    const live = await sendText(t, alice, chat.id, 'after the backlog');
    for (;;) {
      const got = await events.next();
      if (got.event.type === 'message.new' && got.event.message.id === live.id) break;
    }
    expect(await waitingGauge()).toBe(0);
    await reader.close();
  });

  /** A stream on a connection the test controls: full until `release()`. */
  const jammedStream = async (bob: Account, cursor: string) => {
    let asked!: () => void;
    const waiting = new Promise<void>((resolve) => (asked = resolve));
    let release!: () => void;
    let full = true;
    const connection: Connection = {
      buffered: () => (full ? BUFFER_BYTES + 1 : 0),
      drained: () => {
        asked();
        return new Promise<void>((resolve) => (release = resolve));
      },
      streams: 0,
      sessionEnded: () => undefined,
    };
    // The stream's bus handler, so the test can play the bus bringing more than it can queue.
    let busHandler!: (message: unknown) => void;
    const { ports } = t.server.infra;
    const ctx: Context = await createContext(
      {
        ...ports,
        bus: {
          ...ports.bus,
          subscribe: (channel, handler) => {
            busHandler = handler;
            return ports.bus.subscribe(channel, handler);
          },
        },
      },
      t.server.settings,
      {
        requestId: 'jammed',
        ip: '127.0.0.1',
        transport: 'ws',
        token: bob.accessToken,
        connection,
      },
    );
    const stop = new AbortController();
    const stream = (
      await createCallerFactory(appRouter)(ctx, { signal: stop.signal }).sync.events({
        lastEventId: cursor,
      })
    )[Symbol.asyncIterator]();
    return {
      stream,
      waiting,
      bus: (message: unknown) => busHandler(message),
      release: () => {
        full = false;
        release();
      },
      stop: () => stop.abort(),
      connection,
    };
  };

  it('holds no more than a bounded queue while it waits: ephemeral events dropped, durable read again', async () => {
    const { alice, bob, chat, cursor } = await directChat();
    const first = await sendText(t, alice, chat.id, 'one');
    const second = await sendText(t, alice, chat.id, 'two');
    const jammed = await jammedStream(bob, cursor);
    const pending = jammed.stream.next();
    await jammed.waiting;
    const stillWaiting = await Promise.race([
      pending.then(() => 'delivered'),
      new Promise((resolve) => setImmediate(() => resolve('waiting'))),
    ]);
    expect(stillWaiting).toBe('waiting');

    const typing = (conversationId: string) => ({
      type: 'typing',
      conversationId,
      userId: alice.userId,
      until: new Date().toISOString(),
    });
    const flood = 3000;
    for (let i = 0; i < flood; i++) jammed.bus(typing(chat.id));
    jammed.bus(typing('the-last-one'));
    const third = await sendText(t, alice, chat.id, 'three');
    jammed.release();

    const messages: number[] = [];
    let typings = 0;
    let next = await pending;
    for (;;) {
      const event = (next.value as [string, TSyncEvent])[1];
      if (event.type === 'typing' && event.conversationId === 'the-last-one') break;
      if (event.type === 'typing') typings++;
      if (event.type === 'message.new') messages.push(event.message.seq);
      next = await jammed.stream.next();
    }
    expect(messages).toEqual([first.seq, second.seq, third.seq]);
    expect(typings).toBeGreaterThan(0);
    expect(typings).toBeLessThan(flood);
    jammed.stop();
    await jammed.stream.return?.(undefined);
    expect(jammed.connection.streams).toBe(0);
  });

  it('allows a connection a few streams, not one per call', async () => {
    const { bob, cursor } = await directChat();
    const client = t.newClient({ getToken: () => bob.accessToken });
    const open = () =>
      new Promise<{ unsubscribe: () => void }>((resolve, reject) => {
        const sub = client.api.sync.events.subscribe(
          { lastEventId: cursor },
          { onStarted: () => resolve(sub), onError: reject },
        );
      });
    const streams = [];
    for (let i = 0; i < 4; i++) streams.push(await open());
    const refused = await open().then(
      () => null,
      (err: { data?: { code?: string } }) => err,
    );
    expect(refused?.data?.code).toBe('TOO_MANY_REQUESTS');
    // A stream that ends makes room for another (the server counts it out once it stopped).
    streams.shift()!.unsubscribe();
    await vi.waitFor(() => open(), { timeout: 5_000, interval: 50 });
    await client.close();
  });
});
