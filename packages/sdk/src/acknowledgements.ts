import { classifySendError } from './errors';
import { isAfter, type SyncTransport } from './syncTransport';

/** What the sync engine tells the server this device has handled (see createAcknowledgements). */
export type Acknowledgements = {
  /** An envelope handled in `owner`'s stream: it and those before it may be deleted. */
  envelope(id: string, owner: string): void;
  /** A message from someone else handled in `owner`'s stream: delivered to this device. */
  message(conversationId: string, seq: number, owner: string): void;
  /**
   * Sends what was noted: the ack at once, the delivered marks (one per conversation, in one
   * call) after `markDelayMs`, so that a stream of messages costs a call per pause, not per
   * message or conversation; `now` sends those at once too (the engine stops).
   */
  flush(options?: { now?: boolean }): void;
  /** Forgets what was noted in anyone else's stream (after a sign-in). */
  keepOnly(owner: string): void;
  /**
   * Sends `owner`'s ack at once and resolves when every ack sent has been answered (failed ones
   * too: they are reported as ever). A cold start waits for this before its snapshot, which lists
   * the envelopes not yet acknowledged: one handled and acked meanwhile would be handed over again.
   */
  settled(owner: string): Promise<void>;
};

type Owned<T> = T & { owner: string };

/** The server's `messages.markDeliveredMany` takes at most this many. */
const MARKS_PER_CALL = 100;

/**
 * Sent once the engine's queue is drained, so a burst of events costs one call each, not one per
 * event (the marks wait a little longer: see `flush`). Envelopes are deleted on the server up to
 * the last one acknowledged. Messages are marked delivered as Signal's delivery receipts are
 * sent: by the receiving device, as soon as the app's handlers have the message (the sender's
 * devices get a `receipt`); read receipts stay the app's call (`markRead`), as only the app knows
 * what was shown.
 *
 * Each goes out as the account whose stream it was handled in: an ack deletes the envelopes, and
 * a mark moves the position, of whoever's token it carries, so after a sign-in the last account's
 * must not go out as the next one's (the transport's guard refuses it). A failed one is reported
 * and sent again with the next flush while its account is still the one streamed, unless the
 * server's answer will not change (a conversation I have left or that is gone is simply left
 * out by the server).
 */
export function createAcknowledgements(options: {
  transport: Pick<SyncTransport, 'ack' | 'markDelivered'>;
  /** Whose stream the engine is in now (undefined between accounts). */
  streamed: () => string | undefined;
  report: (error: unknown) => void;
  /** False: messages are not marked delivered (the app calls `markDelivered` itself). */
  deliveryReceipts: boolean;
  markDelayMs: number;
}): Acknowledgements {
  const { transport, streamed, report } = options;
  let ackUpTo: Owned<{ id: string }> | null = null;
  const delivered = new Map<string, Owned<{ seq: number }>>();
  let markTimer: ReturnType<typeof setTimeout> | undefined;
  /** Acks on their way; none of them rejects. */
  const acking = new Set<Promise<void>>();

  function sendAck(upTo: Owned<{ id: string }>) {
    const sending = transport
      .ack(upTo.id, upTo.owner)
      .catch((error: unknown) => {
        const newer =
          ackUpTo !== null && ackUpTo.owner === upTo.owner && isAfter(ackUpTo.id, upTo.id);
        if (upTo.owner === streamed() && !newer) ackUpTo = upTo;
        report(error);
      })
      .then(() => void acking.delete(sending));
    acking.add(sending);
  }

  /**
   * One call per account and 100 marks (the server's cap): in one flush they are normally all
   * the streamed account's. A conversation gone or left is left out by the server, not refused.
   */
  function sendMarks() {
    clearTimeout(markTimer);
    markTimer = undefined;
    const byOwner = new Map<string, { conversationId: string; seq: number }[]>();
    for (const [conversationId, { seq, owner }] of delivered) {
      const list = byOwner.get(owner) ?? [];
      list.push({ conversationId, seq });
      byOwner.set(owner, list);
    }
    delivered.clear();
    for (const [owner, marks] of byOwner)
      for (let i = 0; i < marks.length; i += MARKS_PER_CALL)
        sendMarkBatch(marks.slice(i, i + MARKS_PER_CALL), owner);
  }

  function sendMarkBatch(marks: { conversationId: string; seq: number }[], owner: string) {
    transport.markDelivered(marks, owner).catch((error: unknown) => {
      const again = classifySendError(error).retry;
      if (again && owner === streamed())
        for (const { conversationId, seq } of marks)
          if (!delivered.has(conversationId)) delivered.set(conversationId, { seq, owner });
      report(error);
    });
  }

  return {
    envelope(id, owner) {
      ackUpTo = { id, owner };
    },
    message(conversationId, seq, owner) {
      if (!options.deliveryReceipts) return;
      const noted = delivered.get(conversationId);
      if (noted === undefined || noted.owner !== owner || noted.seq < seq)
        delivered.set(conversationId, { seq, owner });
    },
    flush({ now = false } = {}) {
      const upTo = ackUpTo;
      ackUpTo = null;
      if (upTo !== null) sendAck(upTo);
      if (now || options.markDelayMs <= 0) sendMarks();
      else if (delivered.size > 0) markTimer ??= setTimeout(sendMarks, options.markDelayMs);
    },
    keepOnly(owner) {
      if (ackUpTo !== null && ackUpTo.owner !== owner) ackUpTo = null;
      for (const [conversationId, mark] of delivered)
        if (mark.owner !== owner) delivered.delete(conversationId);
    },
    async settled(owner) {
      if (ackUpTo?.owner === owner) {
        const upTo = ackUpTo;
        ackUpTo = null;
        sendAck(upTo);
      }
      await Promise.all(acking);
    },
  };
}
