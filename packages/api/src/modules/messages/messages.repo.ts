import type { Kysely, Selectable, Transaction } from 'kysely';
import type { TMessage } from '@mvp/contracts';
import type { DB, MessagesTable } from '@mvp/db';

type Db = Kysely<DB> | Transaction<DB>;
export type MessageRow = Selectable<MessagesTable>;

const iso = (ms: number | null) => (ms === null ? null : new Date(Number(ms)).toISOString());

export function toMessage(row: MessageRow): TMessage {
  return {
    id: row.id,
    conversationId: row.conversation_id,
    seq: Number(row.seq),
    senderId: row.sender_id,
    senderDeviceId: row.sender_device_id,
    clientMessageId: row.client_message_id,
    contentType: row.content_type,
    ciphertext: row.ciphertext ? Buffer.from(row.ciphertext).toString('base64') : null,
    replyToSeq: row.reply_to_seq === null ? null : Number(row.reply_to_seq),
    forwarded: row.forwarded === 1,
    createdAt: iso(row.created_at)!,
    editedAt: iso(row.edited_at),
    deletedAt: iso(row.deleted_at),
  };
}

export function findByClientId(
  db: Db,
  conversationId: string,
  senderId: string,
  clientMessageId: string,
) {
  return db
    .selectFrom('messages')
    .selectAll()
    .where('conversation_id', '=', conversationId)
    .where('sender_id', '=', senderId)
    .where('client_message_id', '=', clientMessageId)
    .executeTakeFirst();
}

/** Messages by (conversation, seq) pairs, keyed `<conversationId>:<seq>`; one query per 500. */
export async function findBySeqs(
  db: Db,
  refs: { conversationId: string; seq: number }[],
): Promise<Map<string, MessageRow>> {
  const found = new Map<string, MessageRow>();
  for (let i = 0; i < refs.length; i += 500) {
    const chunk = refs.slice(i, i + 500);
    const rows = await db
      .selectFrom('messages')
      .selectAll()
      .where((eb) =>
        eb.or(
          chunk.map((r) =>
            eb.and([eb('conversation_id', '=', r.conversationId), eb('seq', '=', r.seq)]),
          ),
        ),
      )
      .execute();
    for (const row of rows) found.set(`${row.conversation_id}:${Number(row.seq)}`, row);
  }
  return found;
}

/** A page of history, never reaching at or below `floorSeq` (messages from before I joined). */
export async function page(
  db: Db,
  conversationId: string,
  floorSeq: number,
  range: { before?: number; after?: number },
  limit: number,
): Promise<MessageRow[]> {
  let query = db
    .selectFrom('messages')
    .selectAll()
    .where('conversation_id', '=', conversationId)
    .where('seq', '>', Math.max(floorSeq, range.after ?? 0));
  if (range.before !== undefined) query = query.where('seq', '<', range.before);
  return query
    .orderBy('seq', range.after !== undefined ? 'asc' : 'desc')
    .limit(limit)
    .execute();
}
