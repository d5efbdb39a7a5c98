import type { Kysely, Transaction } from 'kysely';
import type { TMessage } from '@mvp/contracts';
import type { DB } from '@mvp/db';
import { describeMessages, findBySeqs } from './messages.repo';

type Db = Kysely<DB> | Transaction<DB>;

/**
 * How far back from a conversation's last seq a preview looks past messages the viewer deleted
 * for themselves. A bound, so that a cold start costs the same however much someone hid: hide
 * more than this at the end of a conversation and its preview is empty until the next message.
 */
export const PREVIEW_LOOK_BACK = 20;

/** A conversation of mine: its last seq and the seq I joined at (my history starts after it). */
export type Shown = { conversationId: string; lastSeq: number; joinedSeq: number };

/**
 * The newest message of each conversation that my history shows (after I joined, not deleted
 * for me), looked for among its last PREVIEW_LOOK_BACK seqs; keyed by conversation id. None for
 * a conversation whose candidates are all hidden or gone (expired).
 */
export async function lastShownMessages(
  db: Db,
  me: string,
  conversations: Shown[],
  now: number,
): Promise<Map<string, TMessage>> {
  const windows = conversations
    .map((c) => ({ ...c, from: Math.max(c.joinedSeq, c.lastSeq - PREVIEW_LOOK_BACK) }))
    .filter((c) => c.lastSeq > c.from);
  const hidden = new Set<string>();
  for (let i = 0; i < windows.length; i += 500) {
    const chunk = windows.slice(i, i + 500);
    const rows = await db
      .selectFrom('message_hidden')
      .select(['conversation_id', 'seq'])
      .where('user_id', '=', me)
      .where((eb) =>
        eb.or(
          chunk.map((c) =>
            eb.and([
              eb('conversation_id', '=', c.conversationId),
              eb('seq', '>', c.from),
              eb('seq', '<=', c.lastSeq),
            ]),
          ),
        ),
      )
      .execute();
    for (const r of rows) hidden.add(`${r.conversation_id}:${Number(r.seq)}`);
  }
  const refs: { conversationId: string; seq: number }[] = [];
  for (const c of windows) {
    for (let seq = c.lastSeq; seq > c.from; seq--) {
      if (hidden.has(`${c.conversationId}:${seq}`)) continue;
      refs.push({ conversationId: c.conversationId, seq });
      break;
    }
  }
  const rows = await findBySeqs(db, refs, now);
  return new Map(
    (await describeMessages(db, [...rows.values()])).map((m) => [m.conversationId, m]),
  );
}
