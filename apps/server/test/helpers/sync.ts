import WebSocket from 'ws';
import type { TSyncEvent } from '@mvp/contracts';
import { createMvpClient, type MvpClient } from '@mvp/sdk';
import { eventQueue } from './collect';
import type { TestServer } from './startServer';

export type Received = { id: string; event: TSyncEvent };

/**
 * A device's `sync.events` stream on its own client (its own WebSocket) to a test server or a
 * server URL, resolved once the server has started it. `close()` drops the socket, as a phone losing its network would.
 *
 * Without `lastEventId`, from the head of the stream as the snapshot has it, as the SDK's cold
 * start does. (`null` is "from wherever the stream is when the server first reads it", after
 * `onStarted`: an event the test causes right after it may fall before that.)
 */
export async function openStream(
  at: TestServer | string,
  token: string,
  lastEventId?: string | null,
) {
  const client: MvpClient =
    typeof at === 'string'
      ? createMvpClient({ url: at, getToken: () => token, WebSocket })
      : at.newClient({ getToken: () => token, WebSocket });
  const events = eventQueue<Received>();
  const errors: unknown[] = [];
  const from =
    lastEventId === undefined ? (await client.api.sync.snapshot.query()).cursor : lastEventId;
  await new Promise<void>((resolve, reject) => {
    client.api.sync.events.subscribe(
      { lastEventId: from },
      {
        onStarted: () => resolve(),
        onData: (tracked) => events.push({ id: tracked.id, event: tracked.data }),
        onError: (err) => {
          errors.push(err);
          reject(err);
        },
      },
    );
  });
  return {
    events,
    errors,
    /** The next event of `type`, skipping others (presence, receipts… whatever the test ignores). */
    async next<T extends TSyncEvent['type']>(type: T, timeoutMs?: number) {
      for (;;) {
        const got = await events.next(timeoutMs);
        if (got.event.type === type)
          return got as { id: string; event: Extract<TSyncEvent, { type: T }> };
      }
    },
    close: () => client.close(),
  };
}

/** The receipts in a user's stream as stored (the truth a resume reads), oldest first. */
export async function storedReceipts(t: TestServer, userId: string): Promise<unknown[]> {
  const rows = await t.server.infra.ports.db
    .selectFrom('user_events')
    .select('payload')
    .where('user_id', '=', userId)
    .where('type', '=', 'receipt')
    .orderBy('seq')
    .execute();
  return rows.map((r) =>
    typeof r.payload === 'string' ? (JSON.parse(r.payload) as unknown) : r.payload,
  );
}
