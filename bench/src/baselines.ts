import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer } from 'ws';
import { frameText } from './wsLoad';

/** What the raw servers answer: bytes captured from the MVP server in the same run. */
export type BaselinePayload = {
  /** The exact body of `GET /trpc/system.info`. */
  httpBody: string;
  /** The `result` member of a WebSocket system.info response, already JSON. */
  wsResultJson: string;
};

export type RunningBaseline = {
  url: string;
  httpUrl: string;
  wsUrl: string;
  close(): Promise<void>;
};

/**
 * The floor the MVP server is compared with: node:http and ws doing the least a real server
 * must (route nothing, parse the request frame for its id), on the same port and path layout
 * as the MVP server so the load generators cannot tell the two apart.
 */
export async function startBaseline(payload: BaselinePayload): Promise<RunningBaseline> {
  const body = Buffer.from(payload.httpBody);
  const server: Server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length });
    res.end(body);
  });

  const wss = new WebSocketServer({ server, path: '/trpc', perMessageDeflate: false });
  wss.on('connection', (socket) => {
    socket.on('message', (data) => {
      // Parsing the frame is the minimum any real handler does; answering with the captured
      // result keeps the response frame the same size and shape as the MVP server's.
      const { id } = JSON.parse(frameText(data)) as { id: number };
      socket.send(`{"id":${id},"result":${payload.wsResultJson}}`);
    });
  });

  const { url, wsUrl, close } = await listenOnLoopback(server, wss);
  return { url, httpUrl: `${url}/trpc/system.info`, wsUrl, close };
}

/** Starts a raw baseline's HTTP + WebSocket server on a free loopback port; `close` ends both. */
export async function listenOnLoopback(server: Server, wss: WebSocketServer) {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    wsUrl: `${url.replace(/^http/, 'ws')}/trpc`,
    close: async () => {
      for (const client of wss.clients) client.terminate();
      wss.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
