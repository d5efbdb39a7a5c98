/**
 * What this device sent lately under its sender keys, so that it can send a message's content
 * again, pairwise, to a member device that cannot read it (Signal's message send log): one
 * whose copy of the key was too far behind, whose key share was lost after the key was
 * replaced, or whose bytes did not decrypt. Kept for a day, as Signal keeps its log: in memory,
 * and in the app's `SendLogStore` when it gives one (else a restarted app cannot resend what it
 * sent before).
 */

import { base64ToBytes, bytesToBase64 } from '../base64';
import type { Awaitable } from '../types';
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
  /** The outbox entry it went out as (a send or an edit). */
  clientMessageId?: string;
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

/**
 * Largest content sent again (`resend`): the envelope (content in base64 inside JSON inside a
 * ratchet message, in base64 again) must fit a WebSocket frame (64 KiB by default). Messages are
 * text and attachment pointers; one this large stays unreadable where it was, and is not kept.
 */
export const RESEND_MAX_CONTENT_BYTES = 24 * 1024;
/** A day, as Signal's log: a device away longer reads the history it can, not resends. */
export const SEND_LOG_MAX_AGE_MS = 24 * 3600 * 1000;
/** Bounds on what the log holds, oldest dropped first: entries and plaintext bytes. */
export const SEND_LOG_MAX_ENTRIES = 1000;
export const SEND_LOG_MAX_BYTES = 8 * 1024 * 1024;

/**
 * Where the send log persists (optional): string records under short keys (`e.12`, `l.3`:
 * letters, digits and dots). They hold the plaintext of what this device sent in the last day:
 * keep them with the `CryptoStore`, in secure storage where the platform has it.
 */
export type SendLogStore = {
  /** Every record saved and not removed, in any order. */
  load(): Awaitable<{ key: string; value: string }[]>;
  save(key: string, value: string): Awaitable<void>;
  remove(key: string): Awaitable<void>;
};

/** What the sender tells the log of a send it handed to the outbox (see `Outbound.encrypt`). */
export type SendLogHooks = {
  queued(clientMessageId: string): void;
  stored(message: SentMessage): void;
};

export type SendLog = {
  /** Resolves once what the store held is loaded (at once without a store). */
  readonly ready: Promise<void>;
  /**
   * `ready`, or `ms` later if the load is still running (a locked keychain): an answer then goes
   * by what is here so far rather than wait for ever.
   */
  readyWithin(ms: number): Promise<void>;
  /** Resolves once every write to the store asked for so far is done (or failed, reported). */
  written(): Promise<void>;
  record(
    conversationId: string,
    keyId: string,
    iteration: number,
    content: Uint8Array,
    devices: ReadonlySet<string>,
  ): Sent;
  /**
   * Queued in the outbox as `clientMessageId`: persisted from now on, so that after a restart
   * the outbox's answer (`queuedAs`) still finds it.
   */
  queued(sent: Sent, clientMessageId: string): void;
  /** The send's answer came: the entry names that message. False when it was known already. */
  stored(sent: Sent, message: SentMessage): boolean;
  /** The entry queued as `clientMessageId` whose answer has not come yet. */
  queuedAs(clientMessageId: string): Sent | undefined;
  placeOf(sent: Sent): Place;
  /** What is still here and may be sent again (not deleted, not expired). */
  find(conversationId: string, keyId: string, iteration: number): Sent | undefined;
  /** Whether anything here was sealed with that key (a request for it deserves an answer). */
  usedKey(conversationId: string, keyId: string): boolean;
  /** Messages deleted for everyone or expired: never sent again. */
  forget(conversationId: string, seqs: readonly number[]): void;
};

export type Place = { conversationId: string; keyId: string; iteration: number };

/**
 * A record's key in the store, chosen when its save runs: only then is it known (after the load)
 * which keys the store already holds.
 */
type Record = { key?: string };

/** A device list as persisted: one record shared by the entries sent to it. */
type List = { devices: ReadonlySet<string>; record?: Record; entries: number };

type Persisted = {
  v: 1;
  conversationId: string;
  keyId: string;
  iteration: number;
  content: string;
  list: string;
  at: number;
  /** Null until the send's answer came (kept for the outbox to name after a restart). */
  message: SentMessage | null;
  clientMessageId?: string;
};

export function createSendLog(
  now: () => number = Date.now,
  options: { store?: SendLogStore; report?: (error: unknown) => void } = {},
): SendLog {
  const { store } = options;
  const report = options.report ?? (() => undefined);
  const entries = new Map<string, Sent>();
  let bytes = 0;
  /**
   * The last device list per conversation: a log of a big group keeps one copy, not one per
   * message. As many conversations as entries at most, the oldest dropped first.
   */
  const lists = new Map<string, List>();
  /** Each entry's place (conversation, key, iteration), its list, its record once persisted. */
  const placeOf = new WeakMap<Sent, Place>();
  const listOf = new WeakMap<Sent, List>();
  const recordOf = new WeakMap<Sent, Record>();
  /**
   * Messages deleted or expired, by `conversation \n seq`, also those whose send's answer had
   * not come yet when it was told (kept as many as entries).
   */
  const forgotten = new Set<string>();
  const keyOf = ({ conversationId, keyId, iteration }: Place) =>
    `${conversationId}\n${keyId}\n${iteration}`;

  /**
   * Writes go one after another, in the order made (a removal never overtakes its save), and
   * only after the load: a store slow to load delays what is persisted, never a send.
   */
  let writes: Promise<void> = Promise.resolve();
  /**
   * False once the store failed to load: writing then could reuse the keys of records it holds
   * (an entry naming another list), so this run keeps the log in memory only.
   */
  let writable = store !== undefined;
  const write = (op: (to: SendLogStore) => Awaitable<void>) => {
    if (!store) return;
    writes = writes.then(() => (writable ? op(store) : undefined)).catch(report);
  };
  let nextRecord = 1;
  const remove = (record: Record) =>
    write((to) => (record.key === undefined ? undefined : to.remove(record.key)));

  const release = (list: List) => {
    if (--list.entries > 0 || !list.record) return;
    remove(list.record);
    list.record = undefined;
  };
  const drop = (key: string) => {
    const sent = entries.get(key);
    if (!sent) return;
    entries.delete(key);
    deferred.delete(sent);
    bytes -= sent.content.length;
    if (sent.clientMessageId !== undefined && queuedEntries.get(sent.clientMessageId) === sent)
      queuedEntries.delete(sent.clientMessageId);
    const record = recordOf.get(sent);
    if (record === undefined) return;
    recordOf.delete(sent);
    remove(record);
    release(listOf.get(sent)!);
  };
  const bound = () => {
    while (entries.size > SEND_LOG_MAX_ENTRIES || bytes > SEND_LOG_MAX_BYTES)
      drop(entries.keys().next().value!);
  };
  const dropExpired = () => {
    // Entries are in sending order: the first ones are the oldest.
    for (const [key, sent] of entries) {
      if (now() - sent.at <= SEND_LOG_MAX_AGE_MS) break;
      drop(key);
    }
  };
  const gone = (conversationId: string, message: SentMessage | null | undefined) =>
    message != null &&
    (forgotten.has(`${conversationId}\n${message.seq}`) ||
      (message.expiresAt !== null && Date.parse(message.expiresAt) <= now()));
  /** Entries queued in the outbox whose answer has not come, by client message id. */
  const queuedEntries = new Map<string, Sent>();

  /** Saves under the record's key, chosen at its first save. */
  const save = (record: Record, prefix: string, value: () => string) =>
    write((to) => to.save((record.key ??= `${prefix}${nextRecord++}`), value()));
  /**
   * Entries to save once the store is loaded: nothing is queued for it before, so a load that
   * never ends holds no more than the log itself.
   */
  const deferred = new Set<Sent>();
  let storeLoaded = store === undefined;
  /** Saves an entry (again, once its answer came), and its list at its first. */
  const persist = (sent: Sent) => {
    if (sent.content.length > RESEND_MAX_CONTENT_BYTES) return; // never resent: not kept
    if (!storeLoaded) {
      deferred.add(sent);
      return;
    }
    const list = listOf.get(sent)!;
    let record = recordOf.get(sent);
    if (!record) {
      recordOf.set(sent, (record = {}));
      list.record ??= {};
      if (list.entries++ === 0 && list.record.key === undefined) {
        const devices = [...list.devices];
        save(list.record, 'l.', () => JSON.stringify({ v: 1, devices }));
      }
    }
    const listRecord = list.record!;
    const place = placeOf.get(sent)!;
    const content = bytesToBase64(sent.content);
    const { at, message, clientMessageId } = sent;
    // Its list's save runs first, so its key is known by then.
    save(record, 'e.', () =>
      JSON.stringify({
        v: 1,
        ...place,
        content,
        list: listRecord.key!,
        at,
        message: message ?? null,
        ...(clientMessageId === undefined ? {} : { clientMessageId }),
      } satisfies Persisted),
    );
  };

  /** Reads what the store holds; records unreadable or too old are removed from it. */
  async function load(from: SendLogStore) {
    const loaded = new Map<string, List>();
    const kept: Sent[] = [];
    const unused: string[] = [];
    const records = await from.load();
    // New keys after every key the store holds or an entry names.
    const seen = (key: string) => {
      const n = Number(key.slice(2));
      if (Number.isSafeInteger(n)) nextRecord = Math.max(nextRecord, n + 1);
    };
    for (const { key, value } of records) {
      seen(key);
      if (!key.startsWith('l.')) continue;
      try {
        const parsed = JSON.parse(value) as { v?: unknown; devices?: unknown };
        if (parsed.v !== 1 || !Array.isArray(parsed.devices)) throw new Error('not a list');
        loaded.set(key, {
          devices: new Set(parsed.devices.map(String)),
          record: { key },
          entries: 0,
        });
      } catch {
        unused.push(key);
      }
    }
    for (const { key, value } of records) {
      if (key.startsWith('l.')) continue;
      const entry = readEntry(value);
      if (entry) seen(entry.list);
      let content: Uint8Array | undefined;
      try {
        content = entry && base64ToBytes(entry.content);
      } catch {
        content = undefined; // not base64: unreadable, removed like the others
      }
      const list = entry && loaded.get(entry.list);
      // Also what was deleted or expired, here or meanwhile (told while this load ran).
      if (
        !entry ||
        !content ||
        !list ||
        now() - entry.at > SEND_LOG_MAX_AGE_MS ||
        gone(entry.conversationId, entry.message)
      ) {
        unused.push(key);
        continue;
      }
      list.entries++;
      const sent: Sent = {
        content,
        devices: list.devices,
        at: entry.at,
        ...(entry.message ? { message: entry.message } : {}),
        ...(entry.clientMessageId === undefined ? {} : { clientMessageId: entry.clientMessageId }),
        waiting: [],
      };
      // Queued before a restart: the outbox names it when it goes out.
      if (!entry.message && entry.clientMessageId !== undefined)
        queuedEntries.set(entry.clientMessageId, sent);
      const { conversationId, keyId, iteration } = entry;
      placeOf.set(sent, { conversationId, keyId, iteration });
      listOf.set(sent, list);
      recordOf.set(sent, { key });
      kept.push(sent);
    }
    for (const list of loaded.values()) if (list.entries === 0) unused.push(list.record!.key!);
    for (const key of unused) remove({ key });

    // Older than anything recorded meanwhile: first in the log's order.
    kept.sort((a, b) => a.at - b.at);
    const newer = [...entries];
    const recordedMeanwhile = new Set(lists.keys());
    entries.clear();
    for (const sent of kept) {
      const place = placeOf.get(sent)!;
      entries.set(keyOf(place), sent);
      bytes += sent.content.length;
      // The newest list per conversation goes on being shared by the next sends.
      if (!recordedMeanwhile.has(place.conversationId)) {
        lists.delete(place.conversationId);
        lists.set(place.conversationId, listOf.get(sent)!);
      }
    }
    for (const [key, sent] of newer) entries.set(key, sent);
    bound();
    storeLoaded = true;
    for (const sent of entries.values()) if (deferred.has(sent)) persist(sent);
    deferred.clear();
  }

  const ready = store
    ? load(store).catch((error: unknown) => {
        writable = false;
        storeLoaded = true;
        deferred.clear();
        report(error); // the log still works, in memory
      })
    : Promise.resolve();
  writes = ready;

  return {
    ready,
    readyWithin: (ms) =>
      Promise.race([
        ready,
        new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, ms);
          void ready.then(() => clearTimeout(timer));
        }),
      ]),
    // After the load: what waited for it is queued then.
    written: () => ready.then(() => writes),
    record(conversationId, keyId, iteration, content, devices) {
      dropExpired(); // a day's plaintext at most, also while nobody asks
      const last = lists.get(conversationId);
      const same =
        last?.devices.size === devices.size && [...devices].every((d) => last.devices.has(d));
      const list = same ? last : { devices: new Set(devices), entries: 0 };
      lists.delete(conversationId);
      lists.set(conversationId, list);
      if (lists.size > SEND_LOG_MAX_ENTRIES) lists.delete(lists.keys().next().value!);
      const sent: Sent = { content, devices: list.devices, at: now(), waiting: [] };
      const place = { conversationId, keyId, iteration };
      placeOf.set(sent, place);
      listOf.set(sent, list);
      const key = keyOf(place);
      drop(key); // the same place again (a key restarted after a lost store): the new one
      entries.set(key, sent);
      bytes += content.length;
      bound();
      return sent;
    },
    queued(sent, clientMessageId) {
      const place = placeOf.get(sent)!;
      if (entries.get(keyOf(place)) !== sent || sent.message) return; // dropped, or answered
      sent.clientMessageId = clientMessageId;
      queuedEntries.set(clientMessageId, sent);
      persist(sent);
    },
    stored(sent, message) {
      if (sent.message) return false;
      sent.message = message;
      if (sent.clientMessageId !== undefined) queuedEntries.delete(sent.clientMessageId);
      const place = placeOf.get(sent)!;
      const key = keyOf(place);
      if (entries.get(key) !== sent) return true; // dropped meanwhile
      // Deleted before its answer came: nothing to keep, here or in the store.
      if (gone(place.conversationId, message)) drop(key);
      else persist(sent);
      return true;
    },
    queuedAs: (clientMessageId) => queuedEntries.get(clientMessageId),
    placeOf: (sent) => placeOf.get(sent)!,
    find(conversationId, keyId, iteration) {
      dropExpired();
      const sent = entries.get(keyOf({ conversationId, keyId, iteration }));
      return sent?.message && gone(conversationId, sent.message) ? undefined : sent;
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

/** A persisted entry, or undefined when it does not read as one. */
function readEntry(value: string): Persisted | undefined {
  try {
    const e = JSON.parse(value) as Partial<Persisted>;
    const m = e.message;
    const text = (x: unknown) => typeof x === 'string';
    const whole = (x: unknown) => Number.isSafeInteger(x) && (x as number) >= 0;
    if (
      e.v !== 1 ||
      !text(e.conversationId) ||
      !text(e.keyId) ||
      !whole(e.iteration) ||
      !text(e.content) ||
      !text(e.list) ||
      !whole(e.at) ||
      !(e.clientMessageId === undefined || text(e.clientMessageId)) ||
      // No message yet only for a send queued in the outbox, which names it when it goes.
      (m === null
        ? e.clientMessageId === undefined
        : !m ||
          !text(m.id) ||
          !whole(m.seq) ||
          !(m.editedAt === null || text(m.editedAt)) ||
          !(m.expiresAt === null || text(m.expiresAt)))
    )
      return undefined;
    return e as Persisted;
  } catch {
    return undefined;
  }
}
