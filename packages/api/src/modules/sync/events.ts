import type { Kysely, Transaction } from 'kysely';
import type { TSyncEvent } from '@mvp/contracts';
import { awaitSteps, type DB, type RunSync, type Steps } from '@mvp/db';
import type { Ports } from '../../ports';
import { isShared, share, sharedText } from '../../sharedEvents';
import { userChannel } from '../contacts/peopleEvents';
import { describeMessages, findBySeqsFor, toMessage } from '../messages/messages.repo';
import { appendEventSteps, appendToMembers, type StoredEvent, type StreamRow } from './stream.repo';

export type DurableEvent = Exclude<TSyncEvent, { type: 'resync' | 'presence' }>;
type MessageRef = { conversationId: string; seq: number };

/** A wake-up on a user's bus channel: "read your stream". */
export const WAKE = { type: 'wake' } as const;

/** One entry a transaction appended to a user's stream; `deviceId` for one device's rows. */
export type CarriedEntry = { seq: number; deviceId?: string; event: TSyncEvent };

/**
 * A wake-up that also carries what the transaction appended to this user's stream: consecutive
 * seqs, the newest last. A reader whose cursor is just before the first yields them without
 * reading the database (the common case: a live device at the head); any other reader treats it
 * as a plain wake-up. Stream rows stay the truth.
 */
export type EventWake = { type: 'wake'; entries: CarriedEntry[] };

/**
 * Larger events travel by reference only (a plain wake-up and a database read): the bus is Redis
 * pub/sub across instances, and a 64 KiB ciphertext to every member of a group would be copied
 * through it once per member.
 */
const MAX_CARRIED_CHARS = 16 * 1024;

/**
 * What a transaction appends to users' streams, collected by `recordEvents` and
 * `recordDeviceEvent`, to wake each user's readers with once it has committed.
 */
export class StreamWrites {
  private readonly byUser = new Map<string, CarriedEntry[]>();

  add(userId: string, entry: CarriedEntry): void {
    const entries = this.byUser.get(userId);
    if (entries) entries.push(entry);
    else this.byUser.set(userId, [entry]);
  }

  /**
   * Call after commit. The events are plain JSON and reach every local subscriber as the same
   * objects, so each is serialised once (see sharedEvents.ts).
   */
  async wake(ports: Pick<Ports, 'bus'>): Promise<void> {
    // Loops rather than spreads and callbacks: every send runs this (bench/README session 21).
    const published: Promise<void>[] = [];
    for (const [userId, entries] of this.byUser) {
      const message: EventWake | typeof WAKE = carriable(entries)
        ? { type: 'wake', entries }
        : WAKE;
      published.push(ports.bus.publish(userChannel(userId), message));
    }
    await Promise.all(published);
  }
}

/** Whether every event is small enough to travel with the wake-up (each serialised once). */
function carriable(entries: readonly CarriedEntry[]): boolean {
  for (const { event } of entries)
    if (sharedText(share(event)).length > MAX_CARRIED_CHARS) return false;
  return true;
}

/**
 * New messages carried by the wake-ups of this turn of the event loop, by conversation and seq:
 * over Redis every member's wake-up arrives as its own parsed copy, and this makes the copies on
 * one instance one shared object again, serialised once for all its subscribers. A `message.new`
 * never changes, so the first copy stands for all; anything else is left as it came, and so is
 * an event this instance published itself (its subscribers get that very object, shared already).
 *
 * The copies of one message arrive together (one transaction's wake-ups go out in one batch), so
 * the map is emptied at the next turn; a copy that arrives later is only serialised once more.
 * An LRU of 2048 kept each message and its JSON text for seconds, long enough for V8 to promote
 * them to the old generation: half of what a receiving instance promoted, and the full GCs that
 * followed paused it for 10-35 ms (bench/README, session 11). No cache library empties per turn.
 */
const recentNew = new Map<string, TSyncEvent>();
let emptying = false;

export function sharedCarried(event: TSyncEvent): TSyncEvent {
  if (event.type !== 'message.new' || isShared(event)) return event;
  const key = `${event.message.conversationId}:${event.message.seq}`;
  const known = recentNew.get(key);
  if (known) return known;
  recentNew.set(key, share(event));
  if (!emptying) {
    emptying = true;
    setImmediate(() => {
      recentNew.clear();
      emptying = false;
    });
  }
  return event;
}

/** What the stream row keeps: a new message only by reference, so its bytes are stored once. */
function storedOf(event: DurableEvent): StoredEvent {
  if (event.type === 'message.new' || event.type === 'message.updated') {
    const ref: MessageRef = {
      conversationId: event.message.conversationId,
      seq: event.message.seq,
    };
    return { type: event.type, payload: ref };
  }
  const { type, ...rest } = event;
  return { type, payload: rest };
}

/**
 * Appends `event(userId)` to each user's stream inside `trx`. Once the transaction has
 * committed, call `writes.wake` (or `wake` with the same users, when no `writes` was given).
 */
export function recordEvents(
  trx: Transaction<DB>,
  userIds: readonly string[],
  event: DurableEvent | ((userId: string) => DurableEvent),
  now: number,
  writes?: StreamWrites,
): Promise<void> {
  return awaitSteps<DB, void>(trx, recordEventSteps(userIds, event, now, writes));
}

/** `recordEvents` as steps of a transaction (see transactionOf). */
export function* recordEventSteps(
  userIds: readonly string[],
  event: DurableEvent | ((userId: string) => DurableEvent),
  now: number,
  writes?: StreamWrites,
): Steps<void> {
  const events = userIds.map((userId) => ({
    userId,
    event: typeof event === 'function' ? event(userId) : event,
  }));
  const seqs = yield* appendEventSteps(
    events.map(({ userId, event }) => ({ userId, event: storedOf(event) })),
    now,
  );
  for (const { userId, event } of events) {
    const seq = seqs.get(userId);
    if (seq !== undefined) writes?.add(userId, { seq, event });
  }
}

/**
 * Appends the same `event` to the stream of every member of the conversation inside `trx` (in
 * fewer, fixed statements than `recordEvents` with the member list); `writes.wake` after commit.
 */
export function recordForMembers(
  run: RunSync<DB>,
  conversationId: string,
  event: DurableEvent,
  now: number,
  writes: StreamWrites,
): void {
  for (const head of appendToMembers(run, conversationId, storedOf(event), now))
    writes.add(head.user_id, { seq: Number(head.last_seq), event });
}

/** One event for one device of a user (its own stream rows; other devices never read it). */
export async function recordDeviceEvent(
  trx: Transaction<DB>,
  device: { userId: string; deviceId: string },
  event: DurableEvent,
  now: number,
  writes?: StreamWrites,
): Promise<void> {
  await recordEach(trx, [{ ...device, event }], now, writes);
}

type EachEntry = { userId: string; deviceId?: string; event: DurableEvent };

/**
 * Different events for different users (or one device of theirs) in one append, so their streams
 * are locked in the one (user id) order every writer takes them in: two appends one after the
 * other lock in the order of the calls, and deadlock with a writer taking the same streams
 * sorted. A user's entries take consecutive seqs in the order given.
 */
export function recordEach(
  trx: Transaction<DB>,
  entries: EachEntry[],
  now: number,
  writes?: StreamWrites,
): Promise<void> {
  return awaitSteps<DB, void>(trx, recordEachSteps(entries, now, writes));
}

/** `recordEach` as steps of a transaction (see transactionOf). */
export function* recordEachSteps(
  entries: EachEntry[],
  now: number,
  writes?: StreamWrites,
): Steps<void> {
  const stored = entries.map(({ event, ...to }) => ({ ...to, event: storedOf(event) }));
  const last = yield* appendEventSteps(stored, now);
  // Each user's entries end at their last seq: numbered back from it, then added in order.
  const seqs: (number | undefined)[] = [];
  for (let i = entries.length - 1; i >= 0; i--) {
    const { userId } = entries[i]!;
    const seq = last.get(userId);
    seqs[i] = seq;
    if (seq !== undefined) last.set(userId, seq - 1);
  }
  entries.forEach(({ userId, deviceId, event }, i) => {
    const seq = seqs[i];
    if (seq !== undefined) writes?.add(userId, { seq, ...(deviceId ? { deviceId } : {}), event });
  });
}

/** Tells the users' subscriptions (on every instance) that their streams grew. */
export async function wake(ports: Pick<Ports, 'bus'>, userIds: Iterable<string>): Promise<void> {
  await Promise.all([...new Set(userIds)].map((id) => ports.bus.publish(userChannel(id), WAKE)));
}

/**
 * Stream rows back into events. Message events are filled in from `messages` (as they are now:
 * an edit or a deletion shows); a message gone with its conversation is skipped. The reactions
 * are shown only where the reader still sees the message in the conversation's history (a
 * member who joined before it): someone removed since, reading an old backlog, gets the message
 * they were sent but not who reacted after they left. (Edits made since carry bytes under the
 * sender key the remaining members rotated when they left.)
 *
 * A `message.updated` of a message from before the reader joined is skipped too: since edits,
 * deletions and pins are told only to members who see the message (changes.service.ts), such a
 * row is one written before that, and its message would show a later joiner an edit sealed under
 * a sender key they hold. (Someone no longer a member keeps the changes they were told of while
 * they were in; a `message.new` they do not see is described from the row as it is now,
 * without reactions.) A skipped row still moves the cursor on: the
 * readers advance by the rows they read, not by the events they yield.
 */
const BY_REFERENCE = new Set(['message.new', 'message.updated']);

export async function hydrate(
  db: Kysely<DB>,
  reader: string,
  rows: StreamRow[],
  now: number,
): Promise<{ seq: number; event: TSyncEvent }[]> {
  // Written by `recordEvents` from validated events only, so the shape is known.
  const parsed = rows.map((r) => ({
    seq: r.seq,
    type: r.type,
    payload: JSON.parse(r.payload) as Record<string, unknown>,
  }));
  const refs = parsed
    .filter((r) => BY_REFERENCE.has(r.type))
    .map((r) => r.payload as unknown as MessageRef);
  // The reader's membership comes with the rows; only what they still see is described with its
  // reactions, the rest is the message as its row is now, without reactions.
  const found = await findBySeqsFor(db, reader, refs, now);
  const visible = [...found.values()].filter((f) => f.seen).map((f) => f.row);
  const messages = new Map(
    (await describeMessages(db, visible)).map((m) => [`${m.conversationId}:${m.seq}`, m]),
  );
  const joinedAfter = new Set<string>();
  for (const [key, view] of found) {
    if (!view.seen) messages.set(key, toMessage(view.row));
    if (view.joinedAfter) joinedAfter.add(key);
  }
  const events: { seq: number; event: TSyncEvent }[] = [];
  for (const row of parsed) {
    if (BY_REFERENCE.has(row.type)) {
      const ref = row.payload as unknown as MessageRef;
      const key = `${ref.conversationId}:${ref.seq}`;
      const message = messages.get(key);
      const type = row.type as 'message.new' | 'message.updated';
      if (type === 'message.updated' && joinedAfter.has(key)) continue;
      if (message) events.push({ seq: row.seq, event: { type, message } });
      continue;
    }
    events.push({ seq: row.seq, event: { type: row.type, ...row.payload } as TSyncEvent });
  }
  return events;
}
