import type { Snapshot, SyncEvent } from './messaging';

/**
 * One conversation's unread state. Messages known unread one by one are kept by seq (`counted`):
 * those the snapshot lists (it does up to 100) and messages from others after it, so they are
 * exact. A snapshot past its list gives a count without saying which messages it counts: `base`
 * of the seqs in (`from`, `to`] (after my read position, up to its last seq), leaving out those in
 * `gone`, known deleted, hidden for me or expired.
 *
 * Invariant: `base` <= the number of seqs of the range not known gone. A removal lowers `base`
 * only to keep that true, that is when every such seq was counted: then the removed one was
 * too. Otherwise the snapshot may have left it out already (a tombstone, a hidden message) and
 * the count is an upper bound until the range is read or removed. So a removal the snapshot
 * already reflects (replayed after a reconnect, or an edit filled from the message as it is
 * now, deleted since) changes nothing, and no seq is taken off twice.
 */
type State = {
  readSeq: number;
  /** The newest seq seen: a message event at or below it is already counted (or mine). */
  lastSeq: number;
  from: number;
  to: number;
  base: number;
  /** Seqs after `from` known gone for good; kept across a reconnect's new snapshot. */
  gone: Set<number>;
  /** Seqs known unread one by one (after `to`, or listed by the snapshot). */
  counted: Set<number>;
};

function unsettled(s: State): number {
  let known = 0;
  for (const seq of s.gone) if (seq <= s.to) known++;
  return s.to - s.from - known;
}

function fresh(readSeq: number, lastSeq: number): State {
  return {
    readSeq,
    lastSeq,
    from: Math.min(readSeq, lastSeq),
    to: lastSeq,
    base: 0,
    gone: new Set(),
    counted: new Set(),
  };
}

/** My read position moves forward only; what it passes stops counting. */
function readUpTo(s: State, seq: number) {
  if (seq <= s.readSeq) return;
  s.readSeq = seq;
  for (const counted of s.counted) if (counted <= seq) s.counted.delete(counted);
  if (seq <= s.from) return;
  s.from = Math.min(seq, s.to);
  for (const gone of s.gone) if (gone <= s.from) s.gone.delete(gone);
  // The snapshot does not say which of its seqs it counted: at most all those still ahead.
  s.base = Math.min(s.base, unsettled(s));
}

/** `seq` is gone (deleted for everyone, hidden for me, expired), now or before the snapshot. */
function remove(s: State, seq: number) {
  s.counted.delete(seq);
  if (seq <= s.from || s.gone.has(seq)) return;
  s.gone.add(seq);
  if (seq <= s.to) s.base = Math.min(s.base, unsettled(s));
}

/**
 * Unread counts as the server computes them (messages from others, not deleted, not hidden for
 * me, after my read position), kept current from the stream so the app need not ask. My own
 * message moves my read position, as it does on the server (so nothing after it is mine).
 */
export function createUnreadTracker(
  me: () => string | undefined,
  notify: (conversationId: string, unread: number) => void,
) {
  const states = new Map<string, State>();
  const counts = new Map<string, number>();
  /** Events up to the snapshot's cursor are already in its counts (a warm start replays them). */
  let reflected: number | null = null;
  /** Whose counts these are: what was hidden for one account is not for the next. */
  let owner: string | undefined;

  const update = (conversationId: string) => {
    const state = states.get(conversationId);
    const next = state ? state.base + state.counted.size : 0;
    if (next === (counts.get(conversationId) ?? 0)) return;
    if (state) counts.set(conversationId, next);
    else counts.delete(conversationId);
    notify(conversationId, next);
  };

  /**
   * Deleted and expired messages stop counting, as on the server. Matched by shape so that event
   * types newer than this SDK's server types still count right.
   */
  const forgetRemoved = (event: { type: string }) => {
    const e = event as {
      type: string;
      message?: { conversationId: string; seq: number; deletedAt: unknown };
      conversationId?: string;
      seqs?: number[];
    };
    const gone =
      e.type === 'message.updated' && e.message?.deletedAt
        ? { conversationId: e.message.conversationId, seqs: [e.message.seq] }
        : e.type === 'messages.removed' && e.conversationId && Array.isArray(e.seqs)
          ? { conversationId: e.conversationId, seqs: e.seqs }
          : null;
    const state = gone && states.get(gone.conversationId);
    if (!gone || !state) return;
    for (const seq of gone.seqs) remove(state, seq);
    update(gone.conversationId);
  };

  return {
    get: (conversationId: string) => counts.get(conversationId) ?? 0,
    total: () => [...counts.values()].reduce((sum, n) => sum + n, 0),

    /**
     * Replaces everything with the snapshot's view, keeping (for the same account) which seqs are
     * known gone: the snapshot left them out, so later removals of them must not count.
     */
    reset(snapshot: Snapshot | null) {
      const before = [...states.keys()];
      const known = snapshot && owner === me() ? new Map(states) : new Map<string, State>();
      owner = me();
      states.clear();
      reflected = snapshot ? Number(snapshot.cursor) : null;
      for (const entry of snapshot?.conversations ?? []) {
        const state = fresh(entry.readSeq, entry.conversation.lastSeq);
        // Listed: nothing is left to count by range (`base` stays 0), and `gone` still keeps what
        // is removed for the next snapshot. Typed wide: a server from before lists none.
        const listed: readonly number[] | null | undefined = entry.unreadSeqs;
        for (const seq of listed ?? []) state.counted.add(seq);
        for (const seq of known.get(entry.conversation.id)?.gone ?? []) remove(state, seq);
        // The last message is the one seq whose state the snapshot shows.
        const last = entry.lastMessage;
        if (last && last.seq === state.to && last.deletedAt !== null) remove(state, last.seq);
        if (!listed) state.base = Math.min(entry.unread, unsettled(state));
        states.set(entry.conversation.id, state);
      }
      for (const id of new Set([...before, ...states.keys()])) update(id);
    },

    /** `id` is the event's stream id; without one the event counts as newer than the snapshot. */
    apply(event: SyncEvent, id?: string) {
      // A removal is safe to apply twice or after the snapshot (see State), and what it settles
      // keeps a later removal of the same seq from counting: the rest is in the snapshot already.
      if (reflected !== null && id !== undefined && Number(id) <= reflected)
        return forgetRemoved(event);
      switch (event.type) {
        case 'conversation.joined': {
          const { id: conversationId, lastSeq } = event.conversation;
          // Joining shows no history as unread: only what comes after.
          if (!states.has(conversationId)) states.set(conversationId, fresh(lastSeq, lastSeq));
          return update(conversationId);
        }
        case 'conversation.left':
          states.delete(event.conversationId);
          return update(event.conversationId);
        case 'message.new': {
          const { conversationId, seq, senderId, deletedAt } = event.message;
          const state = states.get(conversationId) ?? fresh(0, 0);
          states.set(conversationId, state);
          if (seq <= state.lastSeq) return;
          state.lastSeq = seq;
          if (senderId === me()) readUpTo(state, seq);
          // Known gone already (its disappearing timer ran out here before it came): not unread.
          else if (deletedAt === null && seq > state.readSeq && !state.gone.has(seq))
            state.counted.add(seq);
          return update(conversationId);
        }
        case 'receipt': {
          const state = states.get(event.conversationId);
          // Typed wide on purpose: servers that let members hide their read position send null.
          const readSeq: number | null = event.readSeq;
          if (event.userId !== me() || !state || readSeq === null) return;
          readUpTo(state, readSeq);
          return update(event.conversationId);
        }
        default:
          return forgetRemoved(event);
      }
    },
  };
}

export type UnreadTracker = ReturnType<typeof createUnreadTracker>;
