import { randomUUID } from 'node:crypto';

/**
 * The send bookkeeping both messaging baselines share (the raw server and the tRPC floor): a
 * conversation's next seq and each member's next stream seq from counters in memory, the row the
 * MVP would store, and the message as the MVP describes it.
 */
export type SendInput = {
  conversationId: string;
  clientMessageId: string;
  contentType: string;
  ciphertext: string;
};

export type MessageRow = {
  conversation_id: string;
  seq: number;
  id: string;
  sender_id: string;
  sender_device_id: string;
  client_message_id: string;
  content_type: string;
  ciphertext: Buffer;
  created_at: number;
};

/** A send: its row, the conversation's members and each one's new stream seq. */
export type Sent = { row: MessageRow; members: string[]; seqs: number[]; now: number };

/** The message as the MVP server describes it (same members, same order). */
export function describe(row: MessageRow) {
  return {
    id: row.id,
    conversationId: row.conversation_id,
    seq: row.seq,
    senderId: row.sender_id,
    senderDeviceId: row.sender_device_id,
    clientMessageId: row.client_message_id,
    contentType: row.content_type,
    ciphertext: row.ciphertext.toString('base64'),
    replyToSeq: null,
    forwarded: false,
    createdAt: new Date(row.created_at).toISOString(),
    editedAt: null,
    deletedAt: null,
    expiresAt: null,
    reactions: [],
  };
}

export function createSendRelay(conversations: Record<string, string[]>) {
  const conversationSeq = new Map<string, number>();
  const userSeq = new Map<string, number>();
  /** Each sender's one device id, made up on its first send. */
  const deviceOf = new Map<string, string>();
  return {
    /** Exposed so that a persisting baseline can start them where its tables are. */
    conversationSeq,
    userSeq,
    /** Takes the next seqs for a send by `userId`; throws when it is not a member. */
    send(userId: string, input: SendInput): Sent {
      const members = conversations[input.conversationId];
      if (!members?.includes(userId)) throw new Error('not a member');
      const seq = (conversationSeq.get(input.conversationId) ?? 0) + 1;
      conversationSeq.set(input.conversationId, seq);
      const seqs = members.map((member) => {
        const next = (userSeq.get(member) ?? 0) + 1;
        userSeq.set(member, next);
        return next;
      });
      let device = deviceOf.get(userId);
      if (!device) deviceOf.set(userId, (device = randomUUID()));
      const now = Date.now();
      const row: MessageRow = {
        conversation_id: input.conversationId,
        seq,
        id: randomUUID(),
        sender_id: userId,
        sender_device_id: device,
        client_message_id: input.clientMessageId,
        content_type: input.contentType,
        ciphertext: Buffer.from(input.ciphertext, 'base64'),
        created_at: now,
      };
      return { row, members, seqs, now };
    },
  };
}
