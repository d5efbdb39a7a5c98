import type { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';
import type { Connection } from '@mvp/api';

/** The close code of a socket whose session ended (revoked, signed out): sign in again. */
export const SESSION_ENDED_CLOSE_CODE = 4401;

/** A WebSocket's send side as the API's streams see it (see Connection in @mvp/api). */
export function connectionOf(ws: WebSocket, socket: Duplex): Connection {
  return {
    buffered: () => ws.bufferedAmount,
    drained: (signal) =>
      new Promise<void>((resolve) => {
        if (signal?.aborted) return resolve();
        const done = () => {
          socket.off('drain', done);
          socket.off('close', done);
          signal?.removeEventListener('abort', done);
          resolve();
        };
        socket.once('drain', done);
        socket.once('close', done);
        signal?.addEventListener('abort', done, { once: true });
        // 'drain' comes only after a write found the buffer full. Otherwise (a closed socket,
        // a buffer under the socket's own mark) the next turn of the event loop, so a caller
        // that asks again never spins without letting I/O run.
        if (!socket.writableNeedDrain) setImmediate(done);
      }),
    streams: 0,
    sessionEnded: () => ws.close(SESSION_ENDED_CLOSE_CODE, 'session ended'),
  };
}
