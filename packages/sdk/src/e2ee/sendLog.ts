/**
 * What this device sent lately under its sender keys, so that it can send a message's content
 * again, pairwise, to a member device that cannot read it (Signal's message send log): one
 * whose copy of the key was too far behind, whose key share was lost after the key was
 * replaced, or whose bytes did not decrypt. Kept in memory for a day, as Signal keeps its log:
 * a restarted app cannot resend what it sent before (the message stays unreadable there, as
 * it was before this log existed).
 */

export type Sent = {
  /** The plaintext as `encodeContent` made it. */
  content: Uint8Array;
  /** Who was a member when it was sent: nobody else may have it (a later joiner included). */
  members: ReadonlySet<string>;
  at: number;
  /** The message the server stored it as, once known (the send's answer). */
  message?: SentMessage;
};

/** A stored message version: what a resend must name, so that it fits only that one. */
export type SentMessage = { id: string; editedAt: string | null };

/** A day, as Signal's log: a device away longer reads the history it can, not resends. */
export const SEND_LOG_MAX_AGE_MS = 24 * 3600 * 1000;
/** Bounds on what the log holds, oldest dropped first: entries and plaintext bytes. */
export const SEND_LOG_MAX_ENTRIES = 1000;
export const SEND_LOG_MAX_BYTES = 8 * 1024 * 1024;

export type SendLog = {
  record(
    conversationId: string,
    keyId: string,
    iteration: number,
    content: Uint8Array,
    members: readonly string[],
  ): Sent;
  find(conversationId: string, keyId: string, iteration: number): Sent | undefined;
};

export function createSendLog(now: () => number = Date.now): SendLog {
  const entries = new Map<string, Sent>();
  let bytes = 0;
  /** The last member list per conversation: a log of a big group keeps one copy, not one per message. */
  const lists = new Map<string, ReadonlySet<string>>();
  const keyOf = (conversationId: string, keyId: string, iteration: number) =>
    `${conversationId}\n${keyId}\n${iteration}`;

  const dropOldest = () => {
    const [key, sent] = entries.entries().next().value!;
    entries.delete(key);
    bytes -= sent.content.length;
  };

  return {
    record(conversationId, keyId, iteration, content, members) {
      const last = lists.get(conversationId);
      const same = last?.size === members.length && members.every((userId) => last.has(userId));
      const shared = same ? last : new Set(members);
      lists.set(conversationId, shared);
      const sent: Sent = { content, members: shared, at: now() };
      entries.set(keyOf(conversationId, keyId, iteration), sent);
      bytes += content.length;
      while (entries.size > SEND_LOG_MAX_ENTRIES || bytes > SEND_LOG_MAX_BYTES) dropOldest();
      return sent;
    },
    find(conversationId, keyId, iteration) {
      // Entries are in sending order: the first ones are the oldest.
      for (const sent of entries.values()) {
        if (now() - sent.at <= SEND_LOG_MAX_AGE_MS) break;
        dropOldest();
      }
      return entries.get(keyOf(conversationId, keyId, iteration));
    },
  };
}
