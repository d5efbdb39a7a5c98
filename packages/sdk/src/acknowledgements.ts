import { classifySendError, errorCodeOf } from './errors';
import { isAfter, type SyncTransport } from './syncTransport';

/** What the sync engine tells the server this device has handled (see createAcknowledgements). */
export type Acknowledgements = {
  /** An envelope handled in `owner`'s stream: it and those before it may be deleted. */
  envelope(id: string, owner: string): void;
  /** A message from someone else handled in `owner`'s stream: delivered to this device. */
  message(conversationId: string, seq: number, owner: string): void;
  /**
   * Sends what was noted: the ack at once, the delivered marks (one per conversation) after
   * `markDelayMs`, so that a stream of messages costs a mark per conversation and pause, not per
   * message; `now` sends those at once too (the engine stops).
   */
  flush(options?: { now?: boolean }): void;
  /** Forgets what was noted in anyone else's stream (after a sign-in). */
  keepOnly(owner: string): void;
};

type Owned<T> = T & { owner: string };

/**
 * Sent once the engine's queue is drained, so a burst of events costs one call each, not one per
 * event (the marks wait a little longer: see `flush`). Envelopes are deleted on the server up to the last one acknowledged. Messages are
 * marked delivered as Signal's delivery receipts are sent: by the receiving device, as soon as
 * the app's handlers have the message (the sender's devices get a `receipt`); read receipts stay
 * the app's call (`markRead`), as only the app knows what was shown.
 *
 * Each goes out as the account whose stream it was handled in: an ack deletes the envelopes, and
 * a mark moves the position, of whoever's token it carries, so after a sign-in the last account's
 * must not go out as the next one's (the transport's guard refuses it). A failed one is reported
 * and sent again with the next flush while its account is still the one streamed, unless the
 * server's answer will not change (a mark for a conversation I have left or that is gone,
 * `NOT_FOUND`, is dropped without a word).
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

  function sendAck(upTo: Owned<{ id: string }>) {
    transport.ack(upTo.id, upTo.owner).catch((error: unknown) => {
      const newer =
        ackUpTo !== null && ackUpTo.owner === upTo.owner && isAfter(ackUpTo.id, upTo.id);
      if (upTo.owner === streamed() && !newer) ackUpTo = upTo;
      report(error);
    });
  }

  function sendMark(conversationId: string, mark: Owned<{ seq: number }>) {
    transport.markDelivered(conversationId, mark.seq, mark.owner).catch((error: unknown) => {
      if (errorCodeOf(error) === 'NOT_FOUND') return;
      const again = classifySendError(error).retry;
      if (again && mark.owner === streamed() && !delivered.has(conversationId))
        delivered.set(conversationId, mark);
      report(error);
    });
  }

  function sendMarks() {
    clearTimeout(markTimer);
    markTimer = undefined;
    const marks = [...delivered];
    delivered.clear();
    for (const [conversationId, mark] of marks) sendMark(conversationId, mark);
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
  };
}
