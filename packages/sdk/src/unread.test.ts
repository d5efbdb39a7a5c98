import { describe, expect, it } from 'vitest';
import type { Snapshot, SyncEvent } from './messaging';
import { createUnreadTracker } from './unread';

const ME = 'me';

/** Fixtures carry only the fields the tracker reads. */
const wire = <T>(value: object): T => value as T;

type Entry = {
  lastSeq: number;
  unread: number;
  readSeq: number;
  lastDeleted?: boolean;
  /** The seqs the snapshot lists (it does up to 100); absent: a count only. */
  listed?: number[];
};

function snapshotOf(cursor: string, conversations: Record<string, Entry>): Snapshot {
  return wire<Snapshot>({
    cursor,
    conversations: Object.entries(conversations).map(([id, c]) => ({
      conversation: { id, lastSeq: c.lastSeq },
      lastMessage:
        c.lastSeq > 0
          ? { seq: c.lastSeq, senderId: 'other', deletedAt: c.lastDeleted ? 'then' : null }
          : null,
      unread: c.unread,
      unreadSeqs: c.listed ?? null,
      readSeq: c.readSeq,
      deliveredSeq: c.readSeq,
    })),
  });
}

const message = (type: 'message.new' | 'message.updated', seq: number, deleted = false) =>
  wire<SyncEvent>({
    type,
    message: {
      conversationId: 'c1',
      seq,
      senderId: 'other',
      deletedAt: deleted ? new Date(0) : null,
    },
  });
const removed = (seqs: number[], reason: 'expired' | 'deleted_for_me' = 'expired') =>
  wire<SyncEvent>({ type: 'messages.removed', conversationId: 'c1', seqs, reason });
const receipt = (readSeq: number) =>
  wire<SyncEvent>({
    type: 'receipt',
    conversationId: 'c1',
    userId: ME,
    deliveredSeq: readSeq,
    readSeq,
  });

/** A tracker seeded with c1 from a snapshot at cursor 10; `apply` numbers events from 11. */
function tracker(c1: Entry) {
  const unread = createUnreadTracker(
    () => ME,
    () => undefined,
  );
  unread.reset(snapshotOf('10', { c1 }));
  let id = 10;
  return {
    unread,
    apply: (...events: SyncEvent[]) => {
      for (const event of events) unread.apply(event, String(++id));
      return unread.get('c1');
    },
  };
}

describe('unread counts', () => {
  it('expired and hidden messages the snapshot counted stop counting', () => {
    const t = tracker({ lastSeq: 4, unread: 4, readSeq: 0 });
    expect(t.apply(removed([1, 2]))).toBe(2);
    expect(t.apply(removed([3], 'deleted_for_me'))).toBe(1);
    // Expired after it was deleted for everyone: one message, taken off once.
    expect(t.apply(message('message.updated', 4, true), removed([4]))).toBe(0);
  });

  it('a message that expired on this device before it came does not count when it comes', () => {
    const t = tracker({ lastSeq: 4, unread: 0, readSeq: 4 });
    // Local expiry (no stream id) of seq 6, seen in history while the stream was behind.
    t.unread.apply(removed([6]));
    expect(t.apply(message('message.new', 5), message('message.new', 6))).toBe(1);
    // The server's own removal, later, changes nothing.
    expect(t.apply(removed([6]))).toBe(1);
  });

  it('an edit filled in as deleted (deleted since) and the deletion count once', () => {
    const t = tracker({ lastSeq: 3, unread: 3, readSeq: 0 });
    expect(t.apply(message('message.updated', 2, true), message('message.updated', 2, true))).toBe(
      2,
    );
    // After the snapshot too.
    expect(t.apply(message('message.new', 4), message('message.new', 5))).toBe(4);
    expect(t.apply(message('message.updated', 5, true), removed([5]))).toBe(3);
  });

  it('a removal the snapshot already left out (it shows a tombstone) changes nothing', () => {
    // 1..3 from others, 3 deleted for everyone: the snapshot counts 2 and shows 3 deleted.
    const t = tracker({ lastSeq: 3, unread: 2, readSeq: 0, lastDeleted: true });
    expect(t.apply(removed([3]))).toBe(2);
    expect(t.apply(removed([1]))).toBe(1);
  });

  it('when the snapshot does not say which seq it left out: an upper bound, exact once known', () => {
    // One of 1..3 is a tombstone the snapshot does not show: is 1 among those it counted?
    const t = tracker({ lastSeq: 3, unread: 2, readSeq: 0 });
    expect(t.apply(removed([1]))).toBe(2); // never hides a message that is still unread
    expect(t.apply(removed([2, 3]))).toBe(0);
  });

  it('reading part of the snapshot leaves only what is ahead and not gone', () => {
    const t = tracker({ lastSeq: 5, unread: 5, readSeq: 0 });
    expect(t.apply(message('message.updated', 5, true))).toBe(4);
    // Read up to 3: only 4 is left (5 is gone).
    expect(t.apply(receipt(3))).toBe(1);
    expect(t.apply(removed([5]), receipt(2))).toBe(1);
    expect(t.apply(message('message.new', 6), receipt(4))).toBe(1);
    expect(t.apply(receipt(6))).toBe(0);
  });

  it('a conversation read after the cursor (a later page) counts the events it already holds once', () => {
    // Read when 4 and 5 had come, both listed; their events follow the cursor on the stream.
    const t = tracker({ lastSeq: 5, unread: 2, readSeq: 3, listed: [4, 5] });
    expect(t.apply(message('message.new', 4), message('message.new', 5), receipt(3))).toBe(2);
    expect(t.apply(removed([5]))).toBe(1);
    expect(t.apply(message('message.new', 6))).toBe(2);
  });

  it('keeps what it knows is gone across a new snapshot of the same account', () => {
    const t = tracker({ lastSeq: 3, unread: 3, readSeq: 0 });
    expect(t.apply(message('message.updated', 1, true))).toBe(2);
    // Reconnected: the new snapshot counts 2 of 1..3 without saying which; 1 is known gone.
    t.unread.reset(snapshotOf('20', { c1: { lastSeq: 3, unread: 2, readSeq: 0 } }));
    t.unread.apply(removed([2]), '21');
    expect(t.unread.get('c1')).toBe(1);
  });

  it('events up to the snapshot cursor are in its counts: a replayed leave and join keep them', () => {
    const unread = createUnreadTracker(
      () => ME,
      () => undefined,
    );
    unread.reset(snapshotOf('10', { c1: { lastSeq: 6, unread: 2, readSeq: 4 } }));
    unread.apply(wire({ type: 'conversation.left', conversationId: 'c1', reason: 'left' }), '3');
    unread.apply(
      wire({ type: 'conversation.joined', conversation: { id: 'c1', lastSeq: 6 } }),
      '4',
    );
    unread.apply(message('message.new', 5), '5');
    expect(unread.get('c1')).toBe(2);
    unread.apply(receipt(5), '11');
    expect(unread.get('c1')).toBe(1);
  });

  describe('with the seqs the snapshot counted listed', () => {
    it('a removal lowers the count exactly when it was counted', () => {
      // 1..3 from others, 2 deleted for everyone: the snapshot counts 1 and 3 and says so.
      const t = tracker({ lastSeq: 3, unread: 2, readSeq: 0, listed: [1, 3] });
      expect(t.apply(removed([2]))).toBe(2);
      expect(t.apply(removed([1]))).toBe(1); // a count alone could only err high here
      expect(t.apply(message('message.updated', 3, true), removed([3]))).toBe(0);
    });

    it('reading, new messages and removals after the snapshot stay exact', () => {
      const t = tracker({ lastSeq: 5, unread: 3, readSeq: 0, listed: [1, 3, 5] });
      expect(t.apply(receipt(3))).toBe(1);
      expect(t.apply(message('message.new', 6))).toBe(2);
      expect(t.apply(removed([6]), removed([4]))).toBe(1);
      expect(t.apply(receipt(6))).toBe(0);
    });

    it('a seq known gone before a new snapshot listed it does not count', () => {
      const t = tracker({ lastSeq: 3, unread: 3, readSeq: 0, listed: [1, 2, 3] });
      // Expired on this device (no stream id) before the server purged it.
      t.unread.apply(removed([2]));
      t.unread.reset(
        snapshotOf('20', { c1: { lastSeq: 3, unread: 3, readSeq: 0, listed: [1, 2, 3] } }),
      );
      expect(t.unread.get('c1')).toBe(2);
      // Its purge on the stream, later, changes nothing.
      t.unread.apply(removed([2]), '21');
      expect(t.unread.get('c1')).toBe(2);
    });

    it('a removal replayed from before the cursor changes nothing', () => {
      const t = tracker({ lastSeq: 3, unread: 2, readSeq: 0, listed: [2, 3] });
      t.unread.apply(removed([1]), '5');
      expect(t.unread.get('c1')).toBe(2);
    });
  });
});
