import { performance } from 'node:perf_hooks';
import WebSocket, { type RawData } from 'ws';
import { LatencyRecorder, roundResult, type RoundResult } from './stats';

/**
 * A tRPC WebSocket query for system.info. The procedure takes no input; superjson's wrapping of
 * "no input" is `{}` (the server refuses `{"json":null}` as "expected void, received null").
 */
export function systemInfoFrame(id: number): string {
  return `{"id":${id},"method":"query","params":{"path":"system.info","input":{}}}`;
}

/** Frames arrive as one Buffer (ws's default binaryType); tRPC's frames are UTF-8 JSON text. */
export function frameText(data: RawData): string {
  return Buffer.isBuffer(data)
    ? data.toString('utf8')
    : Buffer.concat(Array.isArray(data) ? data : [Buffer.from(data)]).toString('utf8');
}

type Response = { id: number | null; result?: unknown; error?: unknown };

export type WsLoadOptions = {
  sockets: number;
  inFlight: number;
  durationS: number;
};

/**
 * Closed-loop load over WebSocket: every socket keeps `inFlight` requests outstanding, and each
 * response immediately sends the next one, for `durationS` seconds.
 *
 * autocannon is not used here: it speaks HTTP/1.1 request/response only. Its WebSocket story
 * is none, and general WS tools measure connections or raw frames, not the request/response
 * round trip matched by id that tRPC's protocol has (responses may arrive out of order).
 * A few lines of `ws` client do exactly that, and cost raw and MVP the same client CPU.
 */
export async function runWsLoad(url: string, options: WsLoadOptions): Promise<RoundResult> {
  const sockets = await Promise.all(Array.from({ length: options.sockets }, () => openSocket(url)));
  const latencies = new LatencyRecorder();
  let completed = 0;
  let failure: Error | undefined;
  let measuring = true;
  let nextId = 1;

  const started = performance.now();
  const drained = sockets.map(
    (socket) =>
      new Promise<void>((resolve) => {
        const sentAt = new Map<number, number>();
        const send = () => {
          const id = nextId++;
          sentAt.set(id, performance.now());
          socket.send(systemInfoFrame(id));
        };
        socket.on('message', (data) => {
          const now = performance.now();
          const message = JSON.parse(frameText(data)) as Response;
          const sent = message.id === null ? undefined : sentAt.get(message.id);
          if (sent === undefined || message.result === undefined) {
            // An error answer is cheaper than a real one and would flatter the throughput.
            failure ??= new Error(
              `unexpected WebSocket frame from ${url}: ${frameText(data).slice(0, 300)}`,
            );
            measuring = false;
          } else {
            sentAt.delete(message.id as number);
          }
          if (measuring && sent !== undefined) {
            latencies.record(now - sent);
            completed++;
            send();
          }
          if (!measuring && sentAt.size === 0) resolve();
        });
        for (let i = 0; i < options.inFlight; i++) send();
      }),
  );

  await new Promise((resolve) => setTimeout(resolve, options.durationS * 1000));
  measuring = false;
  const seconds = (performance.now() - started) / 1000;
  // Let the requests already in flight come back before closing, so the next round does not
  // start while the server is still answering this one.
  await Promise.race([Promise.all(drained), new Promise((resolve) => setTimeout(resolve, 5_000))]);
  await Promise.all(sockets.map(closeSocket));
  if (failure) throw failure;
  return roundResult(completed, seconds, latencies);
}

function openSocket(url: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    // ws turns Nagle off on its sockets itself; compression off because the MVP server
    // refuses it (small frames are cheaper to send than to deflate).
    const socket = new WebSocket(url, { perMessageDeflate: false });
    socket.once('open', () => resolve(socket));
    socket.once('error', reject);
  });
}

function closeSocket(socket: WebSocket): Promise<void> {
  return new Promise((resolve) => {
    if (socket.readyState === WebSocket.CLOSED) return resolve();
    socket.once('close', () => resolve());
    socket.close();
  });
}
