import type { Snapshot, SyncEvent } from './messaging';

/**
 * One conversation's unread state. The snapshot gives a count without saying which messages it
 * counts (`base`, all at or below `baseSeq`); messages from others that arrive later are kept by
 * seq (`later`), so moving my read position is exact for them.
 */
type State = {
  readSeq: number;
  /** The newest seq seen: a message event at or below it is already counted (or mine). */
  lastSeq: number;
  base: number;
  baseSeq: number;
  later: number[];
};

function countOf(s: State): number {
  // Reading up to r < baseSeq leaves at most the baseSeq - r messages above r of the snapshot's
  // count: exact when reading to the end (the usual case), an upper bound otherwise.
  const fromBase = s.readSeq >= s.baseSeq ? 0 : Math.min(s.base, s.baseSeq - s.readSeq);
  return fromBase + s.later.filter((seq) => seq > s.readSeq).length;
}

/**
 * Unread counts as the server computes them (messages from others, not deleted, after my read
 * position), kept current from the stream so the app need not ask. My own message moves my read
 * position, as it does on the server.
 */
export function createUnreadTracker(
  me: () => string | undefined,
  notify: (conversationId: string, unread: number) => void,
) {
  const states = new Map<string, State>();
  const counts = new Map<string, number>();

  const update = (conversationId: string) => {
    const state = states.get(conversationId);
    const next = state ? countOf(state) : 0;
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
      message?: { conversationId: string; seq: number; senderId: string; deletedAt: unknown };
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
    const counted = state.later.length;
    state.later = state.later.filter((s) => !gone.seqs.includes(s));
    // A deletion among the snapshot's count: known to count when sent by someone else.
    const message = e.message;
    if (
      counted === state.later.length &&
      message &&
      message.senderId !== me() &&
      message.seq > state.readSeq &&
      message.seq <= state.baseSeq
    )
      state.base = Math.max(0, state.base - 1);
    update(gone.conversationId);
  };

  return {
    get: (conversationId: string) => counts.get(conversationId) ?? 0,
    total: () => [...counts.values()].reduce((sum, n) => sum + n, 0),

    /** Replaces everything with the snapshot's view. */
    reset(snapshot: Snapshot | null) {
      const before = [...states.keys()];
      states.clear();
      for (const entry of snapshot?.conversations ?? []) {
        const seq = entry.conversation.lastSeq;
        states.set(entry.conversation.id, {
          readSeq: entry.readSeq,
          lastSeq: seq,
          base: entry.unread,
          baseSeq: seq,
          later: [],
        });
      }
      for (const id of new Set([...before, ...states.keys()])) update(id);
    },

    apply(event: SyncEvent) {
      switch (event.type) {
        case 'conversation.joined': {
          const { id, lastSeq } = event.conversation;
          // Joining shows no history as unread: only what comes after.
          if (!states.has(id))
            states.set(id, { readSeq: lastSeq, lastSeq, base: 0, baseSeq: lastSeq, later: [] });
          return update(id);
        }
        case 'conversation.left':
          states.delete(event.conversationId);
          return update(event.conversationId);
        case 'message.new': {
          const { conversationId, seq, senderId, deletedAt } = event.message;
          const state = states.get(conversationId) ?? {
            readSeq: 0,
            lastSeq: 0,
            base: 0,
            baseSeq: 0,
            later: [],
          };
          states.set(conversationId, state);
          if (seq <= state.lastSeq) return;
          state.lastSeq = seq;
          if (senderId === me()) state.readSeq = Math.max(state.readSeq, seq);
          else if (deletedAt === null) state.later.push(seq);
          state.later = state.later.filter((s) => s > state.readSeq);
          return update(conversationId);
        }
        case 'receipt': {
          const state = states.get(event.conversationId);
          // Typed wide on purpose: servers that let members hide their read position send null.
          const readSeq: number | null = event.readSeq;
          if (event.userId !== me() || !state || readSeq === null) return;
          state.readSeq = Math.max(state.readSeq, readSeq);
          state.later = state.later.filter((s) => s > state.readSeq);
          return update(event.conversationId);
        }
        default:
          return forgetRemoved(event);
      }
    },
  };
}

export type UnreadTracker = ReturnType<typeof createUnreadTracker>;
