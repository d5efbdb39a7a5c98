import type { TEnvelope, TSnapshotConversation } from '@mvp/contracts';
import { readPage } from '../../answerBytes';
import type { Context } from '../../context';
import { AppError } from '../../errors/AppError';
import { ringingInvites } from '../calls/ringing.service';
import { listRequests } from '../contacts/contacts.service';
import * as conversations from '../conversations/conversations.repo';
import { lastShownMessages } from '../messages/lastShown';
import { streamBounds } from './stream.repo';

/** Envelopes a page at most, whatever their size (a key share is a few hundred bytes). */
const MAX_PENDING_PAGE = 1000;

/**
 * A cold start: everything the app shows, and the cursor to stream from. The cursor and (unless
 * paged, below) the conversations are read in one transaction so that they are one moment (a
 * consistent read view on MariaDB, one read snapshot on SQLite): every change up to the cursor
 * is in them and none after it. Upserts would survive a change seen twice; counts would not (the
 * SDK's unread counts add the events after the cursor to the snapshot's). Contact requests are
 * read after it, out of the transaction (their profiles may ask Redis for presence): one that
 * changes in between also arrives as an event, and requests are kept by id. So are the envelopes
 * waiting up to the cursor (a page read must not wait in its request's lane holding the
 * transaction's connection, answerBytes.ts): the bound makes them the same, bar one
 * acknowledged meanwhile.
 *
 * `paged.envelopes`: the client reads envelopes past the first page itself
 * (sync.pendingEnvelopes, as this SDK does). Without it (older SDKs, REST clients that do not ask)
 * every waiting envelope comes, as before: they would save the cursor after the first page and
 * never see the rest. `paged.conversations` likewise (sync.conversations); those pages are read
 * after the transaction, each as of its own moment (see ZSnapshot): a page must not be read in
 * one, and its conversations may be any number of pages. Each conversation's unread messages
 * are counted up to its last seq as read with its row, so a page is one moment per conversation,
 * and counted twice is harmless by contract: the SDK's unread counts take a message at or below a
 * conversation's last seq as counted, and read positions only move forward.
 */
export async function snapshot(
  ctx: Context,
  device: { userId: string; deviceId: string },
  paged: { envelopes: boolean; conversations: boolean },
) {
  const state = await ctx.ports.db
    .transaction()
    .execute((trx) =>
      readSnapshot({ ...ctx, ports: { ...ctx.ports, db: trx } }, device, !paged.conversations),
    );
  const upTo = Number(state.cursor);
  const [contactRequests, envelopes, firstPage] = await Promise.all([
    listRequests(ctx, device.userId),
    paged.envelopes
      ? pendingEnvelopes(ctx, device, 0, upTo)
      : allPendingEnvelopes(ctx, device, upTo).then((all) => ({ envelopes: all, more: false })),
    paged.conversations ? conversationPage(ctx, device.userId, null) : null,
  ]);
  return {
    ...state,
    ...(firstPage
      ? { conversations: firstPage.conversations, moreConversations: firstPage.more }
      : {}),
    contactRequests,
    pendingEnvelopes: envelopes.envelopes,
    moreEnvelopes: envelopes.more,
  };
}

/** The cursor and what rings; with `withConversations`, every conversation of mine too. */
async function readSnapshot(ctx: Context, device: Device, withConversations: boolean) {
  const me = device.userId;
  const db = ctx.ports.db;
  const bounds = await streamBounds(db, me);
  if (!bounds) throw new AppError('UNAUTHORIZED', 'Session ended');
  const [described, ringingCalls] = await Promise.all([
    withConversations
      ? conversations
          .listMine(db, me)
          .then((rows) => describeMine(db, me, rows, ctx.ports.clock.now()))
      : [],
    ringingInvites(ctx, device, bounds.last),
  ]);
  return { cursor: String(bounds.last), conversations: described, ringingCalls };
}

/** Conversations a page at most, whatever their size. */
const MAX_CONVERSATION_PAGE = 500;
const CONVERSATION_CHUNK = 64;

/**
 * My conversations after the id `after` (null: from the first), by id, as many as fit in a page
 * (answerBytes.ts): each carries its last message (up to 64 KiB), and nothing bounds how many
 * conversations one account is in. Read by id, whose order never changes: paged by newest change,
 * a conversation that changed between two pages would move ahead of the next one and be missed.
 */
export async function conversationPage(ctx: Context, me: string, after: string | null) {
  const db = ctx.ports.db;
  const now = ctx.ports.clock.now();
  const { items, more } = await readPage<TSnapshotConversation>(
    ctx.answerBytes,
    MAX_CONVERSATION_PAGE,
    async (n, last) =>
      describeMine(
        db,
        me,
        await conversations.listMineAfter(db, me, last?.conversation.id ?? after, n),
        now,
      ),
    (entry) => JSON.stringify(entry).length,
    // A chunk is described in full (its previews up to 64 KiB each) before the page keeps what
    // fits: 256 at a time could read 16 MiB for a page of 1.
    CONVERSATION_CHUNK,
  );
  return { conversations: items, more };
}

/** What a cold start shows of each of my conversations `rows`, read with `db`, in their order. */
async function describeMine(
  db: Context['ports']['db'],
  me: string,
  rows: conversations.MineRow[],
  now: number,
): Promise<TSnapshotConversation[]> {
  const [unread, last] = await Promise.all([
    conversations.unreadCounts(db, me, rows),
    // The preview: my newest message, not one I deleted for me.
    lastShownMessages(
      db,
      me,
      rows.map((r) => ({
        conversationId: r.id,
        lastSeq: Number(r.last_seq),
        joinedSeq: Number(r.my_joined_seq),
      })),
      now,
    ),
  ]);
  return rows.map((r) => {
    const counted = unread.get(r.id) ?? { count: 0, seqs: [] };
    return {
      conversation: conversations.toConversation(r, { user_id: me, role: r.my_role }),
      lastMessage: last.get(r.id) ?? null,
      unread: counted.count,
      unreadSeqs: counted.seqs,
      readSeq: Number(r.my_read_seq),
      deliveredSeq: Number(r.my_delivered_seq),
      activeAt: new Date(Number(r.updated_at)).toISOString(),
    };
  });
}

type Device = { userId: string; deviceId: string };
type Envelopes = { id: string; envelope: TEnvelope }[];

/** This device's waiting envelopes in (`after`, `upTo`], oldest first, at most `n`. */
function envelopeRows(ctx: Context, device: Device, after: number, upTo: number, n: number) {
  return ctx.ports.db
    .selectFrom('user_events')
    .select(['seq', 'payload'])
    .where('user_id', '=', device.userId)
    .where('device_id', '=', device.deviceId)
    .where('type', '=', 'envelope')
    .where('seq', '>', after)
    .where('seq', '<=', upTo)
    .orderBy('seq')
    .limit(n)
    .execute()
    .then((rows) => rows.map((r) => ({ seq: Number(r.seq), payload: r.payload })));
}

const toEnvelopes = (rows: { seq: number; payload: string }[]): Envelopes =>
  rows.map((r) => ({
    id: String(r.seq),
    envelope: (JSON.parse(r.payload) as { envelope: TEnvelope }).envelope,
  }));

/**
 * This device's unacknowledged envelopes after `after` and up to `upTo`, oldest first, as many as
 * fit in a page (answerBytes.ts): a queue holds up to MVP_DEVICE_QUEUE_CAP envelopes of up to
 * 64 KiB, which anyone may send this device, so all of them in one answer could be 300 MB. The
 * snapshot's cursor is after them, so `more` must be read (`sync.pendingEnvelopes`) before the
 * stream: one left out would never be delivered.
 */
export async function pendingEnvelopes(
  ctx: Context,
  device: Device,
  after: number,
  upTo: number,
): Promise<{ envelopes: Envelopes; more: boolean }> {
  const { items, more } = await readPage<{ seq: number; payload: string }>(
    ctx.answerBytes,
    MAX_PENDING_PAGE,
    (n, last) => envelopeRows(ctx, device, last?.seq ?? after, upTo, n),
    (row) => row.payload.length,
  );
  return { envelopes: toEnvelopes(items), more };
}

/**
 * All of them, for a client that does not page (see `snapshot`). A queue holds at most
 * MVP_DEVICE_QUEUE_CAP (5000 at most), a little more when sends race past the count on MySQL;
 * the limit, twice that, is only a guard.
 */
async function allPendingEnvelopes(ctx: Context, device: Device, upTo: number) {
  return toEnvelopes(await envelopeRows(ctx, device, 0, upTo, 10_000));
}
