import type { Context } from '../../context';
import { AppError } from '../../errors/AppError';
import { listRequests } from '../contacts/contacts.service';
import * as conversations from '../conversations/conversations.repo';
import { describeMessages, findBySeqs } from '../messages/messages.repo';
import { streamBounds } from './stream.repo';

/**
 * A cold start: everything the app shows, and the cursor to stream from. The cursor is read
 * first, so anything that changes while the rest is read arrives again as an event: the app may
 * see a change twice (events are idempotent by id and seq), never miss one.
 */
export async function snapshot(ctx: Context, me: string) {
  const db = ctx.ports.db;
  const bounds = await streamBounds(db, me);
  if (!bounds) throw new AppError('UNAUTHORIZED', 'Session ended');
  const [rows, unread, contactRequests] = await Promise.all([
    conversations.listMine(db, me),
    conversations.unreadCounts(db, me),
    listRequests(ctx, me),
  ]);
  const lastRows = await findBySeqs(
    db,
    rows
      .filter((r) => Number(r.last_seq) > Number(r.my_joined_seq))
      .map((r) => ({ conversationId: r.id, seq: Number(r.last_seq) })),
  );
  const last = new Map(
    (await describeMessages(db, [...lastRows.values()])).map((m) => [m.conversationId, m]),
  );
  return {
    cursor: String(bounds.last),
    conversations: rows.map((r) => {
      const message = last.get(r.id);
      return {
        conversation: conversations.toConversation(r, { user_id: me, role: r.my_role }),
        lastMessage: message ?? null,
        unread: unread.get(r.id) ?? 0,
        readSeq: Number(r.my_read_seq),
        deliveredSeq: Number(r.my_delivered_seq),
      };
    }),
    contactRequests,
  };
}
