import WebSocket from 'ws';
import { frameText } from './wsLoad';

/**
 * A few lines of tRPC v11 WebSocket protocol, enough for the messaging load: the token in the
 * `connectionParams` message, mutations matched by id, and `sync.events` data frames handed over
 * as text. Not the real client (`@trpc/client` or the SDK): the load generator must cost the raw
 * and the MVP side the same client CPU, and the raw servers speak exactly this much.
 */
export type TrpcSocket = {
  /** Sends a mutation frame; `sentAt` is stamped right before the frame is written. */
  mutate(path: string, input: unknown): { id: number; sentAt: number; done: Promise<unknown> };
  /** Starts a subscription; resolves once the server answered `started`. */
  subscribe(path: string, input: unknown, onData: OnData): Promise<void>;
  close(): Promise<void>;
};

/**
 * A subscription's data frame, as the server sends it: a tracked event is superjson's
 * `{ json: { id, data: event } }`, with the id repeated beside it.
 */
export type DataFrame = {
  id: number;
  result: { type: 'data'; id?: string; data: { json: unknown } };
};

/** A data frame and its text (the probe compares raw and MVP frame sizes). */
export type OnData = (frame: DataFrame, text: string) => void;

type Frame = {
  id: number | null;
  result?: { type: string; data?: { json: unknown } };
  error?: unknown;
};

/** Opens a socket that authenticates with `token`; any error frame fails `onError`. */
export async function openTrpcSocket(
  url: string,
  token: string,
  onError: (error: Error) => void,
): Promise<TrpcSocket> {
  const socket = new WebSocket(`${url}?connectionParams=1`, { perMessageDeflate: false });
  await new Promise<void>((resolve, reject) => {
    socket.once('open', () => resolve());
    socket.once('error', reject);
  });
  socket.on('error', (err) => onError(err));
  socket.send(JSON.stringify({ method: 'connectionParams', data: { token } }));

  let nextId = 1;
  const calls = new Map<number, { resolve(value: unknown): void; reject(err: Error): void }>();
  const subscriptions = new Map<number, OnData>();
  const starting = new Map<number, { resolve(): void; reject(err: Error): void }>();

  socket.on('message', (data) => {
    const text = frameText(data);
    // tRPC's keep-alive: the server pings in text, an unanswered ping closes the socket.
    if (text === 'PING') return socket.send('PONG');
    if (text === 'PONG') return;
    const frame = JSON.parse(text) as Frame;
    const id = frame.id ?? -1;
    if (frame.error !== undefined || frame.result === undefined) {
      const err = new Error(`error frame: ${text.slice(0, 400)}`);
      const call = calls.get(id);
      calls.delete(id);
      call?.reject(err);
      // A subscription refused before `started` must not leave its caller waiting forever.
      starting.get(id)?.reject(err);
      starting.delete(id);
      onError(err);
      return;
    }
    const call = calls.get(id);
    if (call) {
      calls.delete(id);
      call.resolve(frame.result.data?.json);
      return;
    }
    if (frame.result.type === 'started') {
      starting.get(id)?.resolve();
      starting.delete(id);
      return;
    }
    if (frame.result.type === 'data') subscriptions.get(id)?.(frame as DataFrame, text);
  });

  return {
    mutate(path, input) {
      const id = nextId++;
      const done = new Promise<unknown>((resolve, reject) => calls.set(id, { resolve, reject }));
      // The caller decides what an error means; an unhandled rejection must not end the run.
      done.catch(() => {});
      const frame = JSON.stringify({
        id,
        method: 'mutation',
        params: { path, input: { json: input } },
      });
      const sentAt = performance.now();
      socket.send(frame);
      return { id, sentAt, done };
    },
    subscribe(path, input, onData) {
      const id = nextId++;
      subscriptions.set(id, onData);
      const started = new Promise<void>((resolve, reject) => starting.set(id, { resolve, reject }));
      socket.send(
        JSON.stringify({ id, method: 'subscription', params: { path, input: { json: input } } }),
      );
      return started;
    },
    close: () =>
      new Promise<void>((resolve) => {
        if (socket.readyState === WebSocket.CLOSED) return resolve();
        socket.once('close', () => resolve());
        socket.close();
      }),
  };
}
