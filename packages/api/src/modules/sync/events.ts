import type { Kysely, Transaction } from 'kysely';
import type { TSyncEvent } from '@mvp/contracts';
import type { DB } from '@mvp/db';
import type { Ports } from '../../ports';
import { share } from '../../sharedEvents';
import { userChannel } from '../contacts/peopleEvents';
import { describeMessages, findBySeqs, type MessageRow } from '../messages/messages.repo';
import { appendEvents, type StoredEvent, type StreamRow } from './stream.repo';

export type DurableEvent = Exclude<TSyncEvent, { type: 'resync' | 'presence' }>;
type MessageRef = { conversationId: string; seq: number };

/** A wake-up on a user's bus channel: "read your stream". */
export const WAKE = { type: 'wake' } as const;

/**
 * A wake-up that also carries the event just committed at `seq`, the user's newest. A reader
 * whose cursor is at `seq - 1` yields it without reading the database (the common case: a live
 * device at the head); any other reader treats it as a plain wake-up. Stream rows stay the truth.
 */
export type EventWake = { type: 'wake'; seq: number; event: TSyncEvent };

/**
 * Events larger than this travel by reference only (a plain wake-up and a database read): the
 * bus is Redis pub/sub across instances, and a 64 KiB ciphertext to every member of a group
 * would be copied through it once per member.
 */
const MAX_CARRIED_CIPHERTEXT_CHARS = 16 * 1024;

function carriable(event: DurableEvent): boolean {
  if (event.type !== 'message.new' && event.type !== 'message.updated') return true;
  return (event.message.ciphertext?.length ?? 0) <= MAX_CARRIED_CIPHERTEXT_CHARS;
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
 * Appends `event(userId)` to each user's stream inside `trx`. Call `wake` with the same users
 * once the transaction has committed.
 */
export function recordEvents(
  trx: Transaction<DB>,
  userIds: readonly string[],
  event: DurableEvent | ((userId: string) => DurableEvent),
  now: number,
): Promise<Map<string, number>> {
  return appendEvents(
    trx,
    userIds.map((userId) => ({
      userId,
      event: storedOf(typeof event === 'function' ? event(userId) : event),
    })),
    now,
  );
}

/** One event for one device of a user (its own stream rows; other devices never read it). */
export function recordDeviceEvent(
  trx: Transaction<DB>,
  device: { userId: string; deviceId: string },
  event: DurableEvent,
  now: number,
): Promise<Map<string, number>> {
  return appendEvents(trx, [{ ...device, event: storedOf(event) }], now);
}

/** Tells the users' subscriptions (on every instance) that their streams grew. */
export async function wake(ports: Pick<Ports, 'bus'>, userIds: Iterable<string>): Promise<void> {
  await Promise.all([...new Set(userIds)].map((id) => ports.bus.publish(userChannel(id), WAKE)));
}

/**
 * Like `wake`, once `recordEvents(trx, users, event)` has committed: `lastSeqs` is what it
 * answered (each user's seq of that entry), and that entry must be the last the transaction
 * appended to each of these streams. Every user gets the same event object, so local subscribers
 * share it (and its serialisation).
 */
export async function wakeWithEvent(
  ports: Pick<Ports, 'bus'>,
  lastSeqs: Map<string, number>,
  event: DurableEvent,
): Promise<void> {
  if (!carriable(event)) return wake(ports, lastSeqs.keys());
  share(event);
  await Promise.all(
    [...lastSeqs].map(([id, seq]) =>
      ports.bus.publish(userChannel(id), { type: 'wake', seq, event } satisfies EventWake),
    ),
  );
}

/**
 * Stream rows back into events. Message events are filled in from `messages` (as they are now:
 * an edit or a deletion shows); a message gone with its conversation is skipped.
 */
const BY_REFERENCE = new Set(['message.new', 'message.updated']);

export async function hydrate(
  db: Kysely<DB>,
  rows: StreamRow[],
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
  const rowsByRef = refs.length > 0 ? await findBySeqs(db, refs) : new Map<string, MessageRow>();
  const described = await describeMessages(db, [...rowsByRef.values()]);
  const messages = new Map(described.map((m) => [`${m.conversationId}:${m.seq}`, m]));
  const events: { seq: number; event: TSyncEvent }[] = [];
  for (const row of parsed) {
    if (BY_REFERENCE.has(row.type)) {
      const ref = row.payload as unknown as MessageRef;
      const message = messages.get(`${ref.conversationId}:${ref.seq}`);
      const type = row.type as 'message.new' | 'message.updated';
      if (message) events.push({ seq: row.seq, event: { type, message } });
      continue;
    }
    events.push({ seq: row.seq, event: { type: row.type, ...row.payload } as TSyncEvent });
  }
  return events;
}
