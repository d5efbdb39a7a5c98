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
  const membership = await checkMark(ctx, me, input);
  return applyMark(ctx, me, membership, { ...input, kind, shareRead: await sharesRead(ctx, me) });
}

/**
 * Delivered marks in several conversations in one call (the SDK's, one per conversation it
 * heard from): one request and one budget point where there would be one per conversation. A
 * conversation I am not in is left out of the answer, as alone it would be NOT_FOUND; a seq past
 * a conversation's newest message refuses the whole call before anything is written.
 */
export async function markDeliveredMany(ctx: Context, me: string, marks: MessageRef[]) {
  const highest = new Map<string, number>();
  for (const { conversationId, seq } of marks)
    highest.set(conversationId, Math.max(seq, highest.get(conversationId) ?? 0));
  const mine: { mark: MessageRef; membership: MemberRow }[] = [];
  for (const [conversationId, seq] of highest) {
    const mark = { conversationId, seq };
    const membership = await unlessGone(checkMark(ctx, me, mark));
    if (membership) mine.push({ mark, membership });
  }
  const shareRead = await sharesRead(ctx, me);
  const marked = [];
  for (const { mark, membership } of mine) {
    // Left between the check and the write: left out like the others.
    const positions = await unlessGone(
      applyMark(ctx, me, membership, { ...mark, kind: 'delivered', shareRead }),
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

type MemberRow = Awaited<ReturnType<typeof requireMember>>['membership'];

/** My membership, or throws: NOT_FOUND if I am not a member, BAD_REQUEST past the newest seq. */
async function checkMark(ctx: Context, me: string, input: MessageRef): Promise<MemberRow> {
  const { conversation, membership } = await requireMember(ctx, input.conversationId, me);
  if (input.seq > Number(conversation.last_seq))
    throw new AppError('BAD_REQUEST', 'seq is past the newest message');
  return membership;
}

async function sharesRead(ctx: Context, me: string): Promise<boolean> {
  const settings = await ctx.ports.db
    .selectFrom('users')
    .select('privacy_read_receipts')
    .where('id', '=', me)
    .executeTakeFirst();
  return settings?.privacy_read_receipts !== 0;
}

/**
 * The mark's transaction, skipped when my membership as just read says it changes nothing (the
 * SDK's automatic marks often repeat what another device of mine or a reply already did).
 */
async function applyMark(ctx: Context, me: string, membership: MemberRow, mark: Mark) {
  const planned = plan(membership, mark);
  if (!planned.moved && planned.news.length === 0) return planned.positions;
  for (let attempt = 1; ; attempt++) {
    try {
      const { positions, wakeUp } = await ctx.ports.db
        .transaction()
        .execute((trx) => moveReceipts(ctx, trx, me, mark));
      if (wakeUp.length > 0) await wake(ctx.ports, wakeUp);
      return positions;
    } catch (err) {
      // My row's lock, then the streams' in user id order; against a send, which takes them
      // its own way, a deadlock is possible (rare) and retried.
      if (!isDeadlock(err) || attempt === 3) throw err;
    }
  }
}

type Mark = MessageRef & { kind: 'delivered' | 'read'; shareRead: boolean };

type Positions = Pick<
  MemberRow,
  'joined_seq' | 'delivered_seq' | 'read_seq' | 'told_delivered_seq' | 'told_read_seq'
>;

/**
 * Where a mark takes my positions, whether they move, and the seq ranges whose senders learn
 * something: past what the others were last told, and past where I joined (nothing before it
 * is in my history). A read position is never told after the fact: while I do not share it,
 * "told" follows it anyway, so turning receipts on later does not report what I read before.
 */
function plan(row: Positions, mark: Mark) {
  const before = { delivered: Number(row.delivered_seq), read: Number(row.read_seq) };
  const delivered = Math.max(before.delivered, mark.seq);
  const read = mark.kind === 'read' ? Math.max(before.read, mark.seq) : before.read;
  const joined = Number(row.joined_seq);
  const told = {
    delivered: Math.max(Number(row.told_delivered_seq), joined),
    read: Math.max(Number(row.told_read_seq), joined),
  };
  const news = [
    { after: told.delivered, upTo: delivered },
    ...(mark.shareRead ? [{ after: told.read, upTo: read }] : []),
  ].filter((r) => r.upTo > r.after);
  return {
    positions: { deliveredSeq: delivered, readSeq: read },
    moved: delivered !== before.delivered || read !== before.read,
    news,
  };
}

async function moveReceipts(ctx: Context, trx: Transaction<DB>, me: string, mark: Mark) {
  const row = await repo.myPositions(trx, mark.conversationId, me, ctx.ports.dialect === 'mysql');
  if (!row) throw new AppError('NOT_FOUND', 'No such conversation'); // left meanwhile
  const { positions, moved, news } = plan(row, mark);
  if (!moved && news.length === 0) return { positions, wakeUp: [] };
  await trx
    .updateTable('conversation_members')
    .set({
      delivered_seq: positions.deliveredSeq,
      read_seq: positions.readSeq,
      told_delivered_seq: positions.deliveredSeq,
      told_read_seq: positions.readSeq,
    })
    .where('conversation_id', '=', mark.conversationId)
    .where('user_id', '=', me)
    .execute();
  const senders = await repo.sendersIn(trx, mark.conversationId, me, news);
  const receipt = {
    type: 'receipt' as const,
    conversationId: mark.conversationId,
    userId: me,
    deliveredSeq: positions.deliveredSeq,
  };
  // One append for me and the senders: the streams are locked in one (user id) order, so two
  // people marking each other's messages at once do not deadlock on them.
  const told = moved ? [me, ...senders] : senders;
  await recordEvents(
    trx,
    told,
    (userId) => ({
      ...receipt,
      readSeq: userId === me || mark.shareRead ? positions.readSeq : null,
    }),
    ctx.ports.clock.now(),
  );
  return { positions, wakeUp: told };
}
