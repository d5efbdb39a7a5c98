/**
 * What this device sent lately under its sender keys, so that it can send a message's content
 * again, pairwise, to a member device that cannot read it (Signal's message send log): one
 * whose copy of the key was too far behind, whose key share was lost after the key was
 * replaced, or whose bytes did not decrypt. Kept in memory for a day, as Signal keeps its log:
 * a restarted app cannot resend what it sent before (the message stays unreadable there, as
 * it was before this log existed).
 */

import type { DeviceRef } from './transport';

export type Sent = {
  /** The plaintext as `encodeContent` made it. */
  content: Uint8Array;
  /**
   * The member devices listed when it was sent (addresses): only they may have it, not a
   * later joiner nor a device added since (which the server could slip in unseen).
   */
  devices: ReadonlySet<string>;
  at: number;
  /** The message the server stored it as, once known (the send's answer). */
  message?: SentMessage;
  /** Devices that asked for it before `message` was known: answered once it is. */
  waiting: DeviceRef[];
};

/**
 * A stored message version: what a resend must name, so that it fits only that one. `seq` is
 * the one this device meant (for an edit, the message it edits, as its associated data binds).
 */
export type SentMessage = {
  id: string;
  seq: number;
  editedAt: string | null;
  expiresAt: string | null;
};

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
    devices: ReadonlySet<string>,
  ): Sent;
  /** What is still here and may be sent again (not deleted, not expired). */
  find(conversationId: string, keyId: string, iteration: number): Sent | undefined;
  /** Whether anything here was sealed with that key (a request for it deserves an answer). */
  usedKey(conversationId: string, keyId: string): boolean;
  /** Messages deleted for everyone or expired: never sent again. */
  forget(conversationId: string, seqs: readonly number[]): void;
};

export function createSendLog(now: () => number = Date.now): SendLog {
  const entries = new Map<string, Sent>();
  let bytes = 0;
  /**
   * The last device list per conversation: a log of a big group keeps one copy, not one per
   * message. As many conversations as entries at most, the oldest dropped first.
   */
  const lists = new Map<string, ReadonlySet<string>>();
  /**
   * Messages deleted or expired, by `conversation \n seq`, also those whose send's answer had
   * not come yet when it was told (kept as many as entries).
   */
  const forgotten = new Set<string>();
  const keyOf = (conversationId: string, keyId: string, iteration: number) =>
    `${conversationId}\n${keyId}\n${iteration}`;

  const drop = (key: string) => {
    const sent = entries.get(key);
    if (!sent) return;
    entries.delete(key);
    bytes -= sent.content.length;
  };
  const dropExpired = () => {
    // Entries are in sending order: the first ones are the oldest.
    for (const [key, sent] of entries) {
      if (now() - sent.at <= SEND_LOG_MAX_AGE_MS) break;
      drop(key);
    }
  };

  return {
    record(conversationId, keyId, iteration, content, devices) {
      const last = lists.get(conversationId);
      const same = last?.size === devices.size && [...devices].every((d) => last.has(d));
      const shared = same ? last : new Set(devices);
      lists.delete(conversationId);
      lists.set(conversationId, shared);
      if (lists.size > SEND_LOG_MAX_ENTRIES) lists.delete(lists.keys().next().value!);
      const sent: Sent = { content, devices: shared, at: now(), waiting: [] };
      entries.set(keyOf(conversationId, keyId, iteration), sent);
      bytes += content.length;
      while (entries.size > SEND_LOG_MAX_ENTRIES || bytes > SEND_LOG_MAX_BYTES)
        drop(entries.keys().next().value!);
      return sent;
    },
    find(conversationId, keyId, iteration) {
      dropExpired();
      const sent = entries.get(keyOf(conversationId, keyId, iteration));
      const message = sent?.message;
      if (message && forgotten.has(`${conversationId}\n${message.seq}`)) return undefined;
      if (message?.expiresAt && Date.parse(message.expiresAt) <= now()) return undefined;
      return sent;
    },
    usedKey(conversationId, keyId) {
      dropExpired();
      const prefix = `${conversationId}\n${keyId}\n`;
      for (const key of entries.keys()) if (key.startsWith(prefix)) return true;
      return false;
    },
    forget(conversationId, seqs) {
      for (const seq of seqs) {
        forgotten.add(`${conversationId}\n${seq}`);
        if (forgotten.size > SEND_LOG_MAX_ENTRIES)
          forgotten.delete(forgotten.values().next().value!);
      }
      const prefix = `${conversationId}\n`;
      for (const [key, sent] of entries)
        if (key.startsWith(prefix) && sent.message && seqs.includes(sent.message.seq)) drop(key);
    },
  };
}
