import type { Transaction } from 'kysely';
import { retryingDeadlocks, type DB } from '@mvp/db';
import { readPage } from '../../answerBytes';
import type { Context } from '../../context';
import { AppError } from '../../errors/AppError';
import { requireMember } from '../conversations/conversations.service';
import { recordEach, wake } from '../sync/events';
import type { MessageRef } from './changes.service';
import * as repo from './messages.repo';

export async function history(
  ctx: Context,
  me: string,
  input: { conversationId: string; before?: number; after?: number; limit: number },
) {
  const { membership } = await requireMember(ctx, input.conversationId, me);
  const newestFirst = input.after === undefined;
  const now = ctx.ports.clock.now();
  const { items, more } = await readPage<repo.MessageRow>(
    ctx.answerBytes,
    input.limit,
    (n, last) =>
      repo.page(
        ctx.ports.db,
        me,
        input.conversationId,
        Number(membership.joined_seq),
        last === undefined ? input : newestFirst ? { before: last.seq } : { after: last.seq },
        n,
        now,
      ),
    (row) => Math.ceil(((row.ciphertext?.length ?? 0) * 4) / 3) + 256, // base64, and the rest
  );
  return { messages: await repo.describeMessages(ctx.ports.db, items), more };
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
  const [marked] = await applyMarks(ctx, me, [input], kind);
  if (!marked) throw new AppError('NOT_FOUND', 'No such conversation');
  return { deliveredSeq: marked.deliveredSeq, readSeq: marked.readSeq };
}

/**
 * Delivered marks in several conversations in one call (the SDK's, one per conversation it
 * heard from): one request, one budget point and one transaction where there would be one of
 * each per conversation. A conversation I am not in is left out of the answer, as alone it would
 * be NOT_FOUND (and so is one I leave while the call runs); a seq past a conversation's newest
 * message refuses the whole call before anything is written. The others are written together
 * or, on a failure, not at all.
 */
export async function markDeliveredMany(ctx: Context, me: string, marks: MessageRef[]) {
  const highest = new Map<string, number>();
  for (const { conversationId, seq } of marks)
    highest.set(conversationId, Math.max(seq, highest.get(conversationId) ?? 0));
  const distinct = [...highest].map(([conversationId, seq]) => ({ conversationId, seq }));
  return { marked: await applyMarks(ctx, me, distinct, 'delivered') };
}

/**
 * Marks in distinct conversations: my positions after them, in the order given, for those in
 * conversations I am a member of. Checked first, all of them (BAD_REQUEST past a conversation's
 * newest seq); then the ones that change something, by my memberships as just read, are written
 * in one transaction. The SDK's automatic marks often repeat what another device of mine or a
 * reply already did: those cost no transaction.
 */
async function applyMarks(
  ctx: Context,
  me: string,
  marks: MessageRef[],
  kind: Mark['kind'],
): Promise<(Receipts & { conversationId: string })[]> {
  const [rows, shareRead] = await Promise.all([
    repo.myMarkTargets(
      ctx.ports.db,
      me,
      marks.map((m) => m.conversationId),
    ),
    sharesRead(ctx, me),
  ]);
  const mine = new Map(rows.map((row) => [row.conversation_id, row]));
  const planned = new Map<string, ReturnType<typeof plan>>();
  const changing: Mark[] = [];
  for (const mark of marks) {
    const row = mine.get(mark.conversationId);
    if (!row) continue;
    if (mark.seq > Number(row.last_seq))
      throw new AppError('BAD_REQUEST', 'seq is past the newest message');
    const full = { ...mark, kind, shareRead };
    const p = plan(row, full);
    planned.set(mark.conversationId, p);
    if (p.moved || p.news.length > 0) changing.push(full);
  }
  const written =
    changing.length > 0 ? await writeMarks(ctx, me, changing) : new Map<string, Receipts>();
  const answer = [];
  for (const { conversationId } of marks) {
    const p = planned.get(conversationId);
    if (!p) continue;
    // Left between the check and the write: left out like the others.
    const positions = p.moved || p.news.length > 0 ? written.get(conversationId) : p.positions;
    if (positions) answer.push({ conversationId, ...positions });
  }
  return answer;
}

async function sharesRead(ctx: Context, me: string): Promise<boolean> {
  const settings = await ctx.ports.db
    .selectFrom('users')
    .select('privacy_read_receipts')
    .where('id', '=', me)
    .executeTakeFirst();
  return settings?.privacy_read_receipts !== 0;
}

/** The marks' transaction, and the wake-up once it has committed: my positions after each. */
async function writeMarks(ctx: Context, me: string, marks: Mark[]) {
  // My rows' locks in conversation id order, then the streams' in user id order; against a
  // send, which takes them its own way, a deadlock is possible (rare) and retried.
  const { positions, wakeUp } = await retryingDeadlocks(() =>
    ctx.ports.db.transaction().execute((trx) => moveReceipts(ctx, trx, me, marks)),
  );
  if (wakeUp.length > 0) await wake(ctx.ports, wakeUp);
  return positions;
}

type Mark = MessageRef & { kind: 'delivered' | 'read'; shareRead: boolean };

type Receipts = { deliveredSeq: number; readSeq: number };

type Positions = Pick<
  Awaited<ReturnType<typeof repo.myPositions>>[number],
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
  const positions: Receipts = { deliveredSeq: delivered, readSeq: read };
  return {
    positions,
    moved: delivered !== before.delivered || read !== before.read,
    news,
  };
}

/**
 * The marks planned again on my rows as locked now (a conversation I left meanwhile has none and
 * is left out), written, and told in one append to the streams of everyone concerned.
 */
async function moveReceipts(ctx: Context, trx: Transaction<DB>, me: string, marks: Mark[]) {
  const byConversation = new Map(marks.map((mark) => [mark.conversationId, mark]));
  const rows = await repo.myPositions(
    trx,
    [...byConversation.keys()],
    me,
    ctx.ports.dialect === 'mysql',
  );
  const positions = new Map<string, Receipts>();
  const moves: ({ mark: Mark } & ReturnType<typeof plan>)[] = [];
  for (const row of rows) {
    const mark = byConversation.get(row.conversation_id)!;
    const planned = plan(row, mark);
    positions.set(mark.conversationId, planned.positions);
    if (planned.moved || planned.news.length > 0) moves.push({ mark, ...planned });
  }
  await repo.setMyPositions(
    trx,
    me,
    moves.map(({ mark, positions: to }) => ({ conversationId: mark.conversationId, ...to })),
  );
  const senders = await repo.sendersIn(
    trx,
    me,
    moves.map(({ mark, news }) => ({ conversationId: mark.conversationId, ranges: news })),
  );
  // One append for me and the senders of every conversation: the streams are locked in one
  // (user id) order, so two people marking each other's messages at once do not deadlock on them.
  const entries = moves.flatMap(({ mark, positions: to, moved }) => {
    const others = senders.get(mark.conversationId) ?? [];
    const told = moved ? [me, ...others] : others;
    return told.map((userId) => ({
      userId,
      event: {
        type: 'receipt' as const,
        conversationId: mark.conversationId,
        userId: me,
        deliveredSeq: to.deliveredSeq,
        readSeq: userId === me || mark.shareRead ? to.readSeq : null,
      },
    }));
  });
  await recordEach(trx, entries, ctx.ports.clock.now());
  return { positions, wakeUp: entries.map((entry) => entry.userId) };
}
