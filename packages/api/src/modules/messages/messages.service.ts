import { uuidv7 } from 'uuidv7';
import type { TMessage } from '@mvp/contracts';
import { isUniqueViolation } from '@mvp/db';
import type { Context } from '../../context';
import { AppError } from '../../errors/AppError';
import { memberIds } from '../conversations/conversations.repo';
import { blockedBetween, requireMember } from '../conversations/conversations.service';
import { recordEvents, wake } from '../sync/events';
import * as repo from './messages.repo';

type Sender = { userId: string; deviceId: string };
export type SendInput = {
  conversationId: string;
  clientMessageId: string;
  contentType: string;
  ciphertext: string;
  replyToSeq?: number;
  forwarded: boolean;
};

/** Who may post: members, except restricted ones; in a channel only the owner and admins. */
async function assertCanPost(ctx: Context, conversationId: string, me: string) {
  const { conversation, membership } = await requireMember(ctx, conversationId, me);
  if (membership.role === 'restricted') throw new AppError('FORBIDDEN', 'You can only read here');
  if (conversation.kind === 'channel' && !['owner', 'admin'].includes(membership.role))
    throw new AppError('FORBIDDEN', 'Only admins post in a channel');
  if (conversation.kind === 'direct') {
    const peer = conversation.direct_key!.split(':').find((id) => id !== me) ?? me;
    if (await blockedBetween(ctx, me, peer))
      throw new AppError('FORBIDDEN', 'You cannot message this user');
  }
  return { conversation, membership };
}

/**
 * Stores an opaque ciphertext as the conversation's next message. The seq comes from the
 * conversation row, bumped inside the writing transaction, so it is gapless and in commit order;
 * the same transaction appends `message.new` to every member's stream. A resend with the same
 * client message id answers the message stored the first time and writes nothing.
 */
export async function sendMessage(
  ctx: Context,
  sender: Sender,
  input: SendInput,
): Promise<TMessage> {
  const db = ctx.ports.db;
  const me = sender.userId;
  const first = await repo.findByClientId(db, input.conversationId, me, input.clientMessageId);
  if (first) return repo.toMessage(first);

  const bytes = Buffer.from(input.ciphertext, 'base64');
  const max = ctx.settings.messaging.maxCiphertextBytes;
  if (bytes.length > max)
    throw new AppError('PAYLOAD_TOO_LARGE', `Ciphertext larger than ${max} bytes`);
  const { conversation } = await assertCanPost(ctx, input.conversationId, me);
  if (input.replyToSeq !== undefined && input.replyToSeq > Number(conversation.last_seq))
    throw new AppError('BAD_REQUEST', 'replyToSeq names no message');

  const now = ctx.ports.clock.now();
  let members: string[] = [];
  let stored: repo.MessageRow;
  try {
    stored = await db.transaction().execute(async (trx) => {
      await trx
        .updateTable('conversations')
        .set((eb) => ({ last_seq: eb('last_seq', '+', 1), updated_at: now }))
        .where('id', '=', input.conversationId)
        .execute();
      const current = await trx
        .selectFrom('conversations')
        .select('last_seq')
        .where('id', '=', input.conversationId)
        .executeTakeFirstOrThrow();
      const seq = Number(current.last_seq);
      const row: repo.MessageRow = {
        conversation_id: input.conversationId,
        seq,
        id: uuidv7(),
        sender_id: me,
        sender_device_id: sender.deviceId,
        client_message_id: input.clientMessageId,
        content_type: input.contentType,
        ciphertext: bytes,
        reply_to_seq: input.replyToSeq ?? null,
        forwarded: input.forwarded ? 1 : 0,
        created_at: now,
        edited_at: null,
        deleted_at: null,
      };
      await trx.insertInto('messages').values(row).execute();
      // My own message is delivered to and read by me.
      await trx
        .updateTable('conversation_members')
        .set({ delivered_seq: seq, read_seq: seq })
        .where('conversation_id', '=', input.conversationId)
        .where('user_id', '=', me)
        .execute();
      // Read under the conversation row lock: exactly the members at this seq.
      members = await memberIds(trx, input.conversationId);
      await recordEvents(trx, members, { type: 'message.new', message: repo.toMessage(row) }, now);
      return row;
    });
  } catch (err) {
    // The same client message id raced itself: the first one is the answer.
    if (!isUniqueViolation(err)) throw err;
    const winner = await repo.findByClientId(db, input.conversationId, me, input.clientMessageId);
    if (!winner) throw err;
    return repo.toMessage(winner);
  }
  await wake(ctx.ports, members);
  return repo.toMessage(stored);
}

export async function history(
  ctx: Context,
  me: string,
  input: { conversationId: string; before?: number; after?: number; limit: number },
) {
  const { membership } = await requireMember(ctx, input.conversationId, me);
  const rows = await repo.page(
    ctx.ports.db,
    input.conversationId,
    Number(membership.joined_seq),
    input,
    input.limit + 1,
  );
  const more = rows.length > input.limit;
  return { messages: rows.slice(0, input.limit).map(repo.toMessage), more };
}

/**
 * Moves my delivered (and, for `read`, read) position forward, never back, and tells the other
 * members. Positions past the newest message are refused.
 */
export async function markReceived(
  ctx: Context,
  me: string,
  input: { conversationId: string; seq: number },
  kind: 'delivered' | 'read',
) {
  const { conversation, membership } = await requireMember(ctx, input.conversationId, me);
  if (input.seq > Number(conversation.last_seq))
    throw new AppError('BAD_REQUEST', 'seq is past the newest message');
  const delivered = Math.max(Number(membership.delivered_seq), input.seq);
  const read =
    kind === 'read'
      ? Math.max(Number(membership.read_seq), input.seq)
      : Number(membership.read_seq);
  if (delivered === Number(membership.delivered_seq) && read === Number(membership.read_seq))
    return { deliveredSeq: delivered, readSeq: read };
  const now = ctx.ports.clock.now();
  const members = await memberIds(ctx.ports.db, input.conversationId);
  await ctx.ports.db.transaction().execute(async (trx) => {
    await trx
      .updateTable('conversation_members')
      // Never backwards, even against a concurrent mark (SQLite has no GREATEST).
      .set((eb) => ({
        delivered_seq: eb
          .case()
          .when('delivered_seq', '<', delivered)
          .then(delivered)
          .else(eb.ref('delivered_seq'))
          .end(),
        read_seq: eb.case().when('read_seq', '<', read).then(read).else(eb.ref('read_seq')).end(),
      }))
      .where('conversation_id', '=', input.conversationId)
      .where('user_id', '=', me)
      .execute();
    await recordEvents(
      trx,
      members,
      {
        type: 'receipt',
        conversationId: input.conversationId,
        userId: me,
        deliveredSeq: delivered,
        readSeq: read,
      },
      now,
    );
  });
  await wake(ctx.ports, members);
  return { deliveredSeq: delivered, readSeq: read };
}
