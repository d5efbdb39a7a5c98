import { base64ToBytes, bytesToBase64, randomId } from './base64';
import { DEFAULT_BACKOFF, reconnectDelayMs } from './backoff';
import { classifySendError, isMvpError, isPayloadTooLarge, type MvpErrorData } from './errors';
import type { Message } from './messaging';
import type {
  OutboxControl,
  OutboxDeps,
  OutboxError,
  OutboxItem,
  OutboxHandle,
  OutboxState,
  OutboxStore,
  StoredOutboxEntry,
} from './outboxTypes';
import type { Awaitable } from './types';

function errorOf(error: unknown): OutboxError {
  const message = error instanceof Error ? error.message : String(error);
  if (isPayloadTooLarge(error)) return { code: 'PAYLOAD_TOO_LARGE', message };
  if (!isMvpError(error)) return { code: 'NETWORK', message };
  const code = (error.data as Partial<MvpErrorData>).appCode ?? 'INTERNAL_SERVER_ERROR';
  return { code, message };
}

type Entry = {
  stored: StoredOutboxEntry;
  /** Queued in this process and its owner is still being asked: it is the caller's own. */
  claiming?: boolean;
  item: OutboxItem;
  /** Settles the handle; absent for sends restored from the store. */
  settle?: { resolve(m: Message): void; reject(e: unknown): void };
  /** The store write of the new entry: nothing is sent before it is kept. */
  kept: Promise<void>;
  /**
   * Not sent again before this (ms since the epoch): the wait a TOO_MANY_REQUESTS asked for.
   * Kept on the entry, not only as a timer: pause(), an account change or a send's kick end
   * the timer, and the limit still holds. (In memory: after a restart the server says it again.)
   */
  notBefore?: number;
};

/**
 * For the sender loops started in the background: each step meets its own failures, so a
 * rejection is a bug with no one to tell; unhandled, it would end a Node process.
 */
const ignore = () => undefined;

/** How an edit's entry id begins (see `StoredOutboxEntry.editSeq`). */
const EDIT_PREFIX = 'edit-';
const isSeq = (seq: unknown): seq is number =>
  typeof seq === 'number' && Number.isSafeInteger(seq) && seq > 0;

const byQueueOrder = (a: Entry, b: Entry) =>
  a.stored.queuedAt - b.stored.queuedAt || a.stored.order - b.stored.order;

/**
 * Whether `me` may send, list and hear of this entry. An entry without an owner was kept by an
 * SDK that did not record one: it may be anyone's who used this client, so it is sent as no one
 * (fail closed: sending it as the wrong account puts words in their mouth and shows one account's
 * pending messages to another). It stays in the store untouched; an app that knows whose it is
 * (one account per install) can write that `userId` into the store, and it goes out as them.
 */
const ownedBy = (entry: Entry, me: string | null | undefined) =>
  entry.claiming === true || (typeof me === 'string' && entry.stored.userId === me);

export function createOutbox(deps: OutboxDeps): OutboxControl {
  const store = deps.store ?? createMemoryOutboxStore();
  const backoff = deps.backoff ?? DEFAULT_BACKOFF;
  const now = deps.now ?? Date.now;
  const entries = new Map<string, Entry>();
  const listeners = new Set<(item: OutboxItem) => void>();
  /** Conversations with a running sender loop: at most one each, which keeps their order. */
  const running = new Set<string>();
  /**
   * Waits in progress, each with whether the server set its length (its `retryAfterMs`): `pause`
   * and an account change end them all, `retryNow` only the others (see `endWaits`).
   */
  const waits = new Map<() => void, { serverSaid: boolean }>();
  let order = 0;
  let lastQueuedAt = 0;
  let paused = false;
  let restoring: Promise<void> | undefined;
  /** The account last learned from `currentUser` (undefined: not asked yet, or changing). */
  let me: string | null | undefined;

  let asked = 0;
  /** Asks who is signed in; a late answer to an earlier question does not overwrite a newer one. */
  const learn = async () => {
    const ask = ++asked;
    const user = await deps.currentUser();
    if (ask === asked) me = user;
    return user;
  };
  const mine = (entry: Entry) => ownedBy(entry, me);

  const snapshotOf = (entry: Entry): OutboxItem => ({ ...entry.item });
  const emit = (entry: Entry) => {
    if (!mine(entry)) return; // another account's app must not hear of it
    const item = snapshotOf(entry);
    for (const listener of listeners) {
      try {
        listener(item);
      } catch {
        // The outbox has no error channel to tell of it, and a listener's bug must not stop the
        // send it was told of (nor the listeners after it) midway: it is the app's to catch.
      }
    }
  };
  const setState = (entry: Entry, state: OutboxState, error?: OutboxError) => {
    entry.item.state = state;
    entry.item.error = error;
    emit(entry);
  };
  // A store that fails must not stop messages from going out: the entry lives on in memory,
  // and the worst case is a send that does not survive a restart.
  const persist = async (write: () => Awaitable<void>) => {
    try {
      await write();
    } catch {
      /* see above */
    }
  };

  const wait = (ms: number, serverSaid = false) =>
    new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        waits.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      waits.set(done, { serverSaid });
    });
  /**
   * `retryNow` means the network is back, which does not lift a limit the server set: the wait
   * it asked for goes on, or the send is refused again (and counts against the limit once more).
   */
  const endWaits = (which: 'all' | 'backoff') => {
    for (const [done, { serverSaid }] of [...waits]) if (which === 'all' || !serverSaid) done();
  };

  /** One attempt at what an entry holds: a send, or an edit of my message `editSeq`. */
  const attempt = (stored: StoredOutboxEntry, asUser: string) => {
    const { clientMessageId, conversationId, contentType, ciphertext, editSeq } = stored;
    if (editSeq !== undefined)
      return deps.edit(
        { conversationId, seq: editSeq, contentType, ciphertext, clientEditId: clientMessageId },
        asUser,
      );
    const { replyToSeq, forwarded } = stored;
    return deps.send(
      {
        clientMessageId,
        conversationId,
        contentType,
        ciphertext,
        ...(replyToSeq === undefined ? {} : { replyToSeq }),
        ...(forwarded === undefined ? {} : { forwarded }),
      },
      asUser,
    );
  };

  const nextQueued = (conversationId: string) =>
    [...entries.values()]
      .filter(
        (e) => e.stored.conversationId === conversationId && e.item.state === 'queued' && mine(e),
      )
      .sort(byQueueOrder)[0];

  /** Sends one conversation's queue head first, one message at a time, until it is empty. */
  const drain = async (conversationId: string) => {
    if (running.has(conversationId)) return;
    running.add(conversationId);
    try {
      await restore();
      for (let entry = nextQueued(conversationId); entry && !paused;) {
        await entry.kept;
        if (!entries.has(entry.stored.clientMessageId) || entry.item.state !== 'queued') {
          entry = nextQueued(conversationId); // discarded while its write was pending
          continue;
        }
        // Asked again before every attempt: after a sign-out or a switch to another account, the
        // last account's entries wait in the store for it instead of going out as someone else.
        const asUser = await learn().catch(() => undefined);
        if (asUser !== undefined && entry.stored.userId !== asUser) {
          entry = nextQueued(conversationId);
          continue;
        }
        const held = (entry.notBefore ?? 0) - Date.now();
        if (held > 0) {
          await wait(held, true);
          continue; // asked again: paused, discarded or signed out meanwhile
        }
        entry.item.attempts += 1;
        setState(entry, 'sending');
        const id = entry.stored.clientMessageId;
        try {
          if (asUser === undefined) throw new Error('could not tell who is signed in');
          const message = await attempt(entry.stored, asUser);
          entries.delete(id);
          entry.item.message = message;
          setState(entry, 'sent');
          await persist(() => store.remove(id));
          entry.settle?.resolve(message);
        } catch (error) {
          const verdict = classifySendError(error);
          if (!entries.has(id)) {
            entry.settle?.reject(error); // discarded while on its way: nothing to keep or retry
          } else if (!verdict.retry) {
            entry.stored = { ...entry.stored, state: 'failed', error: errorOf(error) };
            setState(entry, 'failed', entry.stored.error);
            // Discarded by a listener told it failed: kept now, it would come back after a restart.
            if (entries.get(id) === entry) await persist(() => store.save(entry!.stored));
            entry.settle?.reject(error);
          } else {
            // Back in the queue at the head: the next attempt reuses the client message id.
            setState(entry, 'queued', errorOf(error));
            const serverSaid = verdict.afterMs !== undefined;
            if (verdict.afterMs !== undefined) entry.notBefore = Date.now() + verdict.afterMs;
            const delay =
              verdict.afterMs ?? reconnectDelayMs(entry.item.attempts - 1, backoff, deps.random);
            // Not waited out for an account signed out meanwhile: it must not hold up the next.
            if (!paused && mine(entry)) await wait(delay, serverSaid);
          }
        }
        entry = nextQueued(conversationId);
      }
    } finally {
      running.delete(conversationId);
    }
  };

  const kick = () => {
    const conversations = new Set(
      [...entries.values()]
        .filter((e) => e.item.state === 'queued')
        .map((e) => e.stored.conversationId),
    );
    for (const id of conversations) void drain(id).catch(ignore);
  };

  const add = (
    stored: StoredOutboxEntry,
    kept: Promise<void>,
    settle?: Entry['settle'],
    claiming?: boolean,
  ) => {
    const entry: Entry = {
      stored,
      kept,
      settle,
      claiming,
      item: {
        clientMessageId: stored.clientMessageId,
        conversationId: stored.conversationId,
        contentType: stored.contentType,
        ciphertext: base64ToBytes(stored.ciphertext),
        ...(stored.replyToSeq === undefined ? {} : { replyToSeq: stored.replyToSeq }),
        ...(stored.forwarded === undefined ? {} : { forwarded: stored.forwarded }),
        ...(stored.editSeq === undefined ? {} : { editSeq: stored.editSeq }),
        state: stored.state,
        attempts: 0,
        ...(stored.error ? { error: stored.error } : {}),
      },
    };
    entries.set(stored.clientMessageId, entry);
    emit(entry);
    return entry;
  };

  /**
   * Records the owner of a new send, then keeps it. With no one signed in (or no way to tell) the
   * send fails at once: it has no account to go out as, and must not wait for whoever comes next.
   */
  const claim = async (entry: Entry, owner: Promise<string | null>) => {
    const who = await owner.catch(() => null);
    if (who === null) {
      entries.delete(entry.stored.clientMessageId);
      const error = new Error('no one is signed in to send this message');
      entry.stored = { ...entry.stored, state: 'failed' };
      setState(entry, 'failed', { code: 'UNAUTHORIZED', message: error.message });
      entry.claiming = false;
      entry.settle?.reject(error);
      return;
    }
    entry.stored = { ...entry.stored, userId: who };
    // Known as its owner's from here on; `me` is asked first so it does not blink out of `pending`.
    await learn().catch(() => undefined);
    entry.claiming = false;
    // Discarded while its owner was asked: kept now, it would come back after a restart.
    if (entries.get(entry.stored.clientMessageId) !== entry) return;
    await persist(() => store.save(entry.stored));
  };

  /**
   * Asks who is signed in until it can tell, then sends. A token store may fail for a while (a
   * keychain locked at boot); until the account is known nothing is anyone's, so without asking
   * again no loop would ever send. The waits are backoff waits: `retryNow` ends them.
   */
  async function learnThenKick(): Promise<void> {
    for (let attempt = 0; !paused; attempt++) {
      try {
        await learn();
        kick();
        return;
      } catch {
        await wait(reconnectDelayMs(attempt, backoff, deps.random));
      }
    }
  }

  function restore(): Promise<void> {
    paused = false;
    if (restoring === undefined) {
      const loading = loadKept();
      restoring = loading;
      // Not kept if it fails: the next `restore` (or `send`) tries again.
      loading.catch(() => {
        if (restoring === loading) restoring = undefined;
      });
    }
    return restoring.then(kick);
  }

  async function loadKept(): Promise<void> {
    let kept: StoredOutboxEntry[] = [];
    try {
      kept = await store.load();
    } catch {
      // An unreadable store starts empty, as a memory store would; new sends still go out.
      kept = [];
    }
    await learn().catch(() => void learnThenKick());
    for (const stored of kept) {
      try {
        if (entries.has(stored.clientMessageId)) continue;
        // An edit id that lost its seq must not go out as a message (nor a made-up seq anywhere).
        const isEdit = stored.clientMessageId.startsWith(EDIT_PREFIX);
        if ((isEdit || stored.editSeq !== undefined) && !isSeq(stored.editSeq))
          throw new Error('an edit without a seq');
        // Later sends are queued after what was kept, even if the clock went back meanwhile.
        lastQueuedAt = Math.max(lastQueuedAt, stored.queuedAt);
        order = Math.max(order, stored.order + 1);
        // A send cut short by the restart may or may not have arrived: sending it again with the
        // same id is safe either way.
        add(
          { ...stored, state: stored.state === 'failed' ? 'failed' : 'queued' },
          Promise.resolve(),
        );
      } catch {
        // Unreadable (a ciphertext that is not base64, a damaged entry): it can never be sent,
        // and it must not hold up the others. It is left in the app's store, not removed: the
        // outbox cannot tell what it was, and deleting the app's data is not its call.
      }
    }
  }

  /** Queues a new send or edit under a fresh entry id; see `send`. */
  const enqueue = (
    what: Omit<StoredOutboxEntry, 'clientMessageId' | 'queuedAt' | 'order' | 'state'>,
  ): OutboxHandle => {
    paused = false;
    // Never before the last one: a clock set back must not put a later edit before an earlier.
    lastQueuedAt = Math.max(lastQueuedAt, now());
    const stored: StoredOutboxEntry = {
      clientMessageId: what.editSeq === undefined ? randomId() : `${EDIT_PREFIX}${randomId()}`,
      ...what,
      queuedAt: lastQueuedAt,
      order: order++,
      state: 'queued',
    };
    let settle!: Entry['settle'];
    const result = new Promise<Message>((resolve, reject) => (settle = { resolve, reject }));
    result.catch(() => undefined);
    // Asked now, before anything else can run: a sign-in that follows cannot claim this send.
    const owner = (async () => deps.currentUser())();
    const entry = add({ ...stored }, Promise.resolve(), settle, true);
    entry.kept = claim(entry, owner);
    void restore();
    return { clientMessageId: stored.clientMessageId, result };
  };

  return {
    send: (conversationId, message) =>
      enqueue({
        conversationId,
        contentType: message.contentType,
        ciphertext: bytesToBase64(message.ciphertext),
        ...(message.replyToSeq === undefined ? {} : { replyToSeq: message.replyToSeq }),
        ...(message.forwarded === undefined ? {} : { forwarded: message.forwarded }),
      }),
    edit(conversationId, seq, edit) {
      if (!isSeq(seq)) throw new TypeError(`@mvp/sdk: not a message seq: ${String(seq)}`);
      return enqueue({
        conversationId,
        contentType: edit.contentType,
        ciphertext: bytesToBase64(edit.ciphertext),
        editSeq: seq,
      });
    },
    pending: (conversationId) =>
      [...entries.values()]
        .filter((e) => conversationId === undefined || e.stored.conversationId === conversationId)
        .filter(mine)
        .sort(byQueueOrder)
        .map(snapshotOf),
    onChange(listener) {
      listeners.add(listener);
      return { unsubscribe: () => void listeners.delete(listener) };
    },
    restore,
    retry(clientMessageId) {
      const entry = entries.get(clientMessageId);
      if (entry?.item.state !== 'failed' || !mine(entry)) return;
      const { error: _error, ...rest } = entry.stored;
      entry.stored = { ...rest, state: 'queued' };
      entry.item.attempts = 0;
      entry.kept = persist(() => store.save(entry.stored));
      setState(entry, 'queued');
      paused = false;
      void drain(entry.stored.conversationId).catch(ignore);
    },
    async discard(clientMessageId) {
      const entry = entries.get(clientMessageId);
      if (!entry || !mine(entry)) return;
      entries.delete(clientMessageId);
      entry.settle?.reject(new Error('discarded from the outbox'));
      await persist(() => store.remove(clientMessageId));
    },
    retryNow() {
      paused = false;
      endWaits('backoff');
      kick();
    },
    pause() {
      paused = true;
      endWaits('all');
    },
    accountChanged() {
      // Nothing is shown as anyone's until the new account is known; waits end so every loop
      // asks again before its next attempt (one already on the wire is refused by `send`).
      me = undefined;
      endWaits('all');
      void learnThenKick();
    },
  };
}

/** The default store: pending sends live as long as the process. */
export function createMemoryOutboxStore(): OutboxStore {
  const kept = new Map<string, StoredOutboxEntry>();
  return {
    load: () => [...kept.values()].map((e) => ({ ...e })),
    save: (entry) => void kept.set(entry.clientMessageId, { ...entry }),
    remove: (clientMessageId) => void kept.delete(clientMessageId),
  };
}
