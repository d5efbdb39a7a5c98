import { createServer, type Server } from 'node:http';
import { listenOnLoopback } from './baselines';
import mysql from 'mysql2/promise';
import { WebSocketServer, type WebSocket } from 'ws';
import {
  createSendRelay,
  describe,
  type MessageRow,
  type SendInput,
  type Sent,
} from './messagingRelay';
import { frameText } from './wsLoad';

/**
 * The raw messaging server: the least a relay must do, speaking just enough of tRPC's WebSocket
 * protocol that the load generator cannot tell it from the MVP server. A socket names its user
 * with the `connectionParams` token; a `sync.events` subscription registers the socket for that
 * user; a `messages.send` mutation is parsed, optionally persisted (`mysql`), forwarded as a
 * `message.new` data frame to every subscribed socket of every member, and answered. The message
 * JSON is built once per send and each subscriber's frame is a string around it.
 */
export type MessagingBaselinePayload = {
  /** token → user id, for the accounts the load uses. */
  users: Record<string, string>;
  /** conversation id → member user ids. */
  conversations: Record<string, string[]>;
  /**
   * Set: each send is one mysql2 transaction inserting the message row and one `user_events`
   * row per member, the columns the MVP server writes, on the MVP server's own schema.
   */
  mysql?: { url: string; poolSize: number };
};

type Incoming =
  | { method: 'connectionParams'; data: { token: string } }
  | { id: number; method: 'subscription'; params: { path: string } }
  | {
      id: number;
      method: 'mutation';
      params: {
        path: string;
        input: { json: SendInput };
      };
    };

type Persist = (row: MessageRow, members: string[], seqs: number[], now: number) => Promise<void>;

async function mysqlPersist(
  options: NonNullable<MessagingBaselinePayload['mysql']>,
  conversations: Record<string, string[]>,
  conversationSeq: Map<string, number>,
  userSeq: Map<string, number>,
): Promise<{ persist: Persist; close(): Promise<void> }> {
  const pool = mysql.createPool({
    uri: options.url,
    charset: 'utf8mb4',
    timezone: 'Z',
    connectionLimit: options.poolSize,
  });
  // Start where the streams and conversations are (the MVP wrote `conversation.joined` rows).
  const users = [...new Set(Object.values(conversations).flat())];
  const [streams] = await pool.query<mysql.RowDataPacket[]>(
    'SELECT user_id, MAX(seq) AS seq FROM user_events WHERE user_id IN (?) GROUP BY user_id',
    [users],
  );
  for (const r of streams) userSeq.set(String(r.user_id), Number(r.seq));
  const [convs] = await pool.query<mysql.RowDataPacket[]>(
    'SELECT conversation_id, MAX(seq) AS seq FROM messages WHERE conversation_id IN (?) GROUP BY conversation_id',
    [Object.keys(conversations)],
  );
  for (const r of convs) conversationSeq.set(String(r.conversation_id), Number(r.seq));

  const persist: Persist = async (row, members, seqs, now) => {
    const conn = await pool.getConnection();
    try {
      await conn.beginTransaction();
      await conn.execute(
        'INSERT INTO messages (conversation_id, seq, id, sender_id, sender_device_id, client_message_id, ' +
          'content_type, ciphertext, reply_to_seq, forwarded, created_at, edited_at, deleted_at, expires_at) ' +
          'VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, 0, ?, NULL, NULL, NULL)',
        [
          row.conversation_id,
          row.seq,
          row.id,
          row.sender_id,
          row.sender_device_id,
          row.client_message_id,
          row.content_type,
          row.ciphertext,
          row.created_at,
        ],
      );
      const payload = JSON.stringify({ conversationId: row.conversation_id, seq: row.seq });
      await conn.query(
        'INSERT INTO user_events (user_id, seq, device_id, type, payload, created_at) VALUES ?',
        [members.map((userId, i) => [userId, seqs[i], null, 'message.new', payload, now])],
      );
      await conn.commit();
    } catch (err) {
      await conn.rollback().catch(() => {});
      throw err;
    } finally {
      conn.release();
    }
  };
  return { persist, close: () => pool.end() };
}

export async function startMessagingBaseline(payload: MessagingBaselinePayload) {
  const relay = createSendRelay(payload.conversations);
  const store = payload.mysql
    ? await mysqlPersist(payload.mysql, payload.conversations, relay.conversationSeq, relay.userSeq)
    : undefined;
  /** user id → its subscribed sockets and their subscription ids. */
  const subscribed = new Map<string, Map<WebSocket, number>>();

  const server: Server = createServer((_req, res) => res.writeHead(404).end());
  const wss = new WebSocketServer({ server, path: '/trpc', perMessageDeflate: false });
  wss.on('connection', (socket) => {
    let userId: string | undefined;
    const fail = (id: number | null, message: string) =>
      socket.send(JSON.stringify({ id, error: { message } }));
    socket.on('close', () => {
      if (userId) subscribed.get(userId)?.delete(socket);
    });
    socket.on('message', (data) => {
      const message = JSON.parse(frameText(data)) as Incoming;
      if (message.method === 'connectionParams') {
        userId = payload.users[message.data.token];
        return;
      }
      if (!userId) return fail(message.id, 'unauthorized');
      if (message.method === 'subscription') {
        let sockets = subscribed.get(userId);
        if (!sockets) subscribed.set(userId, (sockets = new Map<WebSocket, number>()));
        sockets.set(socket, message.id);
        socket.send(`{"id":${message.id},"result":{"type":"started"}}`);
        return;
      }
      let sent: Sent;
      try {
        sent = relay.send(userId, message.params.input.json);
      } catch (err) {
        return fail(message.id, (err as Error).message);
      }
      const { row, members, seqs, now } = sent;
      const id = message.id;
      const deliver = () => {
        const messageJson = JSON.stringify(describe(row));
        const eventJson = `{"type":"message.new","message":${messageJson}}`;
        members.forEach((member, i) => {
          for (const [target, subscriptionId] of subscribed.get(member) ?? []) {
            target.send(
              `{"id":${subscriptionId},"result":{"type":"data","data":{"json":{"id":"${seqs[i]}","data":${eventJson}}},"id":"${seqs[i]}"}}`,
            );
          }
        });
        socket.send(`{"id":${id},"result":{"type":"data","data":{"json":${messageJson}}}}`);
      };
      if (!store) return deliver();
      store
        .persist(row, members, seqs, now)
        .then(deliver, (err: unknown) =>
          fail(id, err instanceof Error ? err.message : String(err)),
        );
    });
  });

  const listening = await listenOnLoopback(server, wss);
  return {
    wsUrl: listening.wsUrl,
    close: async () => {
      await listening.close();
      await store?.close();
    },
  };
}
