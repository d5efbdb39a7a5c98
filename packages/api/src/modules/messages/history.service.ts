import type { Transaction } from 'kysely';
import { isDeadlock, type DB } from '@mvp/db';
import type { Context } from '../../context';
import { AppError } from '../../errors/AppError';
import { requireMember } from '../conversations/conversations.service';
import { recordEvents, wake } from '../sync/events';
import type { MessageRef } from './changes.service';
import * as repo from './messages.repo';

export async function history(
  ctx: Context,
  me: string,
  input: { conversationId: string; before?: number; after?: number; limit: number },
) {
  const { membership } = await requireMember(ctx, input.conversationId, me);
  const rows = await repo.page(
    ctx.ports.db,
    me,
    input.conversationId,
    Number(membership.joined_seq),
    input,
    input.limit + 1,
  );
  const more = rows.length > input.limit;
  return {
    messages: await repo.describeMessages(ctx.ports.db, rows.slice(0, input.limit)),
    more,
  };
}

/**
 * Moves my delivered (and, for `read`, read) position forward, never back. My devices get my
 * positions when they move. Of the other members, the senders of the messages my positions now
 * reach past what the others were last told get them, as Signal sends a receipt to the sender:
 * my read position only when my `readReceipts` setting is on (else `readSeq: null`). Telling
 * every member instead cost each mark one event per member, so a message that everyone in a
 * 1000-member group reads cost about a million stream rows. "Last told" is kept apart from the
 * positions because my own message moves them silently (see the receipts-told migration).
 * Positions past the newest message are refused.
 */
export async function markReceived(
  ctx: Context,
  me: string,
  input: MessageRef,
  kind: 'delivered' | 'read',
) {
  await checkMark(ctx, me, input);
  return applyMark(ctx, me, { ...input, kind, shareRead: await sharesRead(ctx, me) });
}

/**
 * Delivered marks in several conversations in one call (the SDK's, one per conversation it
 * heard from): one request and one budget point where there would be one per conversation. A
 * conversation I am not in is left out of the answer, as alone it would be NOT_FOUND; a seq past
 * a conversation's newest message refuses the whole call before anything is written.
 */
export async function markDeliveredMany(ctx: Context, me: string, marks: MessageRef[]) {
  const mine: MessageRef[] = [];
  for (const mark of marks) if (await unlessGone(checkMark(ctx, me, mark))) mine.push(mark);
  const shareRead = await sharesRead(ctx, me);
  const marked = [];
  for (const mark of mine) {
    // Left between the check and the write: left out like the others.
    const positions = await unlessGone(
      applyMark(ctx, me, { ...mark, kind: 'delivered', shareRead }),
    );
    if (positions) marked.push({ conversationId: mark.conversationId, ...positions });
  }
  return { marked };
}

/** What `work` answers, or undefined when it found no such conversation (or not mine). */
async function unlessGone<T>(work: Promise<T>): Promise<T | undefined> {
  try {
    return await work;
  } catch (err) {
    if (err instanceof AppError && err.appCode === 'NOT_FOUND') return undefined;
    throw err;
  }
}

/** True, or throws: NOT_FOUND unless I am a member, BAD_REQUEST past the newest message. */
async function checkMark(ctx: Context, me: string, input: MessageRef): Promise<true> {
  const { conversation } = await requireMember(ctx, input.conversationId, me);
  if (input.seq > Number(conversation.last_seq))
    throw new AppError('BAD_REQUEST', 'seq is past the newest message');
  return true;
}

async function sharesRead(ctx: Context, me: string): Promise<boolean> {
  const settings = await ctx.ports.db
    .selectFrom('users')
    .select('privacy_read_receipts')
    .where('id', '=', me)
    .executeTakeFirst();
  return settings?.privacy_read_receipts !== 0;
}

async function applyMark(ctx: Context, me: string, mark: Mark) {
  for (let attempt = 1; ; attempt++) {
    try {
      const { positions, wakeUp } = await ctx.ports.db
        .transaction()
        .execute((trx) => moveReceipts(ctx, trx, me, mark));
      if (wakeUp.length > 0) await wake(ctx.ports, wakeUp);
      return positions;
    } catch (err) {
      // The row lock is taken before the streams', as a send takes them; a deadlock is retried.
      if (!isDeadlock(err) || attempt === 3) throw err;
    }
  }
}

type Mark = MessageRef & { kind: 'delivered' | 'read'; shareRead: boolean };

async function moveReceipts(ctx: Context, trx: Transaction<DB>, me: string, mark: Mark) {
  const row = await repo.myPositions(trx, mark.conversationId, me, ctx.ports.dialect === 'mysql');
  if (!row) throw new AppError('NOT_FOUND', 'No such conversation'); // left meanwhile
  const before = { delivered: Number(row.delivered_seq), read: Number(row.read_seq) };
  const delivered = Math.max(before.delivered, mark.seq);
  const read = mark.kind === 'read' ? Math.max(before.read, mark.seq) : before.read;
  const positions = { deliveredSeq: delivered, readSeq: read };
  // Nothing from before I joined is anyone's news: my history does not show it.
  const joined = Number(row.joined_seq);
  const told = {
    delivered: Math.max(Number(row.told_delivered_seq), joined),
    read: Math.max(Number(row.told_read_seq), joined),
  };
  const news = [
    { after: told.delivered, upTo: delivered },
    ...(mark.shareRead ? [{ after: told.read, upTo: read }] : []),
  ].filter((r) => r.upTo > r.after);
  const moved = delivered !== before.delivered || read !== before.read;
  if (!moved && news.length === 0) return { positions, wakeUp: [] };
  await trx
    .updateTable('conversation_members')
    .set({
      delivered_seq: delivered,
      read_seq: read,
      told_delivered_seq: delivered,
      told_read_seq: mark.shareRead ? read : Number(row.told_read_seq),
    })
    .where('conversation_id', '=', mark.conversationId)
    .where('user_id', '=', me)
    .execute();
  const now = ctx.ports.clock.now();
  const receipt = {
    type: 'receipt' as const,
    conversationId: mark.conversationId,
    userId: me,
    deliveredSeq: delivered,
  };
  if (moved) await recordEvents(trx, [me], { ...receipt, readSeq: read }, now);
  const senders = await repo.sendersIn(trx, mark.conversationId, me, news);
  if (senders.length > 0)
    await recordEvents(trx, senders, { ...receipt, readSeq: mark.shareRead ? read : null }, now);
  return { positions, wakeUp: moved ? [me, ...senders] : senders };
}
