import { sql, type Compilable, type Insertable, type Kysely, type Transaction } from 'kysely';
import {
  awaitSteps,
  prepared,
  step,
  type DB,
  type Prepared,
  type RunSync,
  type Steps,
} from '@mvp/db';

type Db = Kysely<DB> | Transaction<DB>;

/** What a stream row holds: the event's type and a small JSON payload (see events.ts). */
export type StoredEvent = { type: string; payload: unknown };

/** Lists up to this long get statements compiled once per length; longer ones are built per call. */
const PREPARED_LIST_MAX = 16;

/**
 * `build` as a prepared query (compiled once) for each list length up to PREPARED_LIST_MAX, and
 * compiled afresh for each longer list: appendEvents' statements take a list (users, rows),
 * almost always of one or two (a call's two parties, a contact pair), and compiling them on
 * every append was ~3 % of a call setup's server CPU. The bound keeps the compiled set small
 * whatever lists come.
 */
function preparedPerLength<Args extends unknown[], Row>(
  build: (db: Kysely<DB>, ...args: Args) => Compilable<Row>,
): (length: number) => Prepared<DB, Args, Row> {
  const byLength = new Map<number, Prepared<DB, Args, Row>>();
  return (length) => {
    if (length > PREPARED_LIST_MAX) return prepared(build);
    let query = byLength.get(length);
    if (!query) byLength.set(length, (query = prepared(build)));
    return query;
  };
}

const bumpStreams = preparedPerLength((db, by: number, ...userIds: string[]) =>
  db
    .updateTable('user_streams')
    .set((eb) => ({ last_seq: eb('last_seq', '+', by) }))
    .where('user_id', 'in', userIds),
);

/** Each stream bumped by its own count: `userAndCount` is user id, count, user id, count… */
const bumpStreamsBy = preparedPerLength((db, ...userAndCount: (string | number)[]) => {
  const userIds: string[] = [];
  const cases = [];
  for (let i = 0; i < userAndCount.length; i += 2) {
    userIds.push(userAndCount[i] as string);
    cases.push(sql`when ${userAndCount[i]} then ${userAndCount[i + 1]}`);
  }
  const by = sql<number>`case ${sql.ref('user_id')} ${sql.join(cases, sql` `)} end`;
  return db
    .updateTable('user_streams')
    .set((eb) => ({ last_seq: eb('last_seq', '+', by) }))
    .where('user_id', 'in', userIds);
});

const readHeads = preparedPerLength((db, ...userIds: string[]) =>
  db.selectFrom('user_streams').select(['user_id', 'last_seq']).where('user_id', 'in', userIds),
);

const EVENT_COLUMNS = ['user_id', 'seq', 'device_id', 'type', 'payload', 'created_at'] as const;
/**
 * Streams per UPDATE (three parameters each at most) and rows per INSERT (six each): a batch of
 * receipts over a hundred big groups stays far below SQLite's variable limit and MariaDB's
 * 16 MiB packet, where one statement for all of it did not.
 */
const USERS_PER_STATEMENT = 2000;
const ROWS_PER_INSERT = 1000;

/** Rows as flat values, EVENT_COLUMNS.length per row, in that order. */
const insertEventRows = preparedPerLength((db, ...values: unknown[]) => {
  const rows: Insertable<DB['user_events']>[] = [];
  for (let i = 0; i < values.length; i += EVENT_COLUMNS.length) {
    const row = Object.fromEntries(EVENT_COLUMNS.map((column, j) => [column, values[i + j]]));
    rows.push(row as Insertable<DB['user_events']>);
  }
  return db.insertInto('user_events').values(rows);
});

type Entry = { userId: string; deviceId?: string; event: StoredEvent };

/**
 * Appends events to users' streams inside the caller's transaction, in a few statements whatever
 * the number of users: bump each `last_seq` by the user's number of entries (the row locks make
 * concurrent writers to one stream wait for each other, so seq order is commit order: an
 * auto-increment id would not be), take the new values under those locks, insert all rows at
 * once. A user's entries take consecutive seqs in the order given. Answers each user's last
 * new seq. As steps (see transactionOf): `appendEvents` runs them in a Kysely transaction.
 */
export function* appendEventSteps(entries: Entry[], now: number): Steps<Map<string, number>> {
  if (entries.length === 0) return new Map();
  const counts = new Map<string, number>();
  for (const { userId } of entries) counts.set(userId, (counts.get(userId) ?? 0) + 1);
  // One UPDATE for all the streams, so writers take the row locks in one (user id) order (one
  // per distinct count took each count's users in order but not all of them: a user with two
  // entries before one with one, which could deadlock with a writer taking them sorted); then
  // the new values are read back under those locks (one way on both dialects: MySQL has no
  // UPDATE … RETURNING).
  const userIds = [...counts.keys()].sort();
  const [by] = counts.values();
  const same = new Set(counts.values()).size === 1;
  const last = new Map<string, number>();
  // Sorted chunks keep the lock order; one chunk (one UPDATE, one read) almost always.
  for (let i = 0; i < userIds.length; i += USERS_PER_STATEMENT) {
    const chunk =
      userIds.length <= USERS_PER_STATEMENT ? userIds : userIds.slice(i, i + USERS_PER_STATEMENT);
    if (same) yield* step(bumpStreams(chunk.length), by!, ...chunk);
    else yield* step(bumpStreamsBy(chunk.length), ...chunk.flatMap((id) => [id, counts.get(id)!]));
    const { rows } = yield* step(readHeads(chunk.length), ...chunk);
    for (const row of rows) last.set(row.user_id, Number(row.last_seq));
  }
  const next = new Map([...last].map(([userId, seq]) => [userId, seq - counts.get(userId)! + 1]));
  const values: unknown[] = [];
  for (const { userId, deviceId, event } of entries) {
    const seq = next.get(userId);
    // A user deleted meanwhile has no stream left; there is nobody to tell.
    if (seq === undefined) continue;
    next.set(userId, seq + 1);
    values.push(userId, seq, deviceId ?? null, event.type, JSON.stringify(event.payload), now);
  }
  const perInsert = ROWS_PER_INSERT * EVENT_COLUMNS.length;
  for (let i = 0; i < values.length; i += perInsert) {
    const part = values.length <= perInsert ? values : values.slice(i, i + perInsert);
    yield* step(insertEventRows(part.length / EVENT_COLUMNS.length), ...part);
  }
  return last;
}

/** `appendEventSteps` inside the caller's Kysely transaction. */
export function appendEvents(
  trx: Transaction<DB>,
  entries: Entry[],
  now: number,
): Promise<Map<string, number>> {
  return awaitSteps<DB, Map<string, number>>(trx, appendEventSteps(entries, now));
}

// One event to every member of a conversation, in three statements of fixed shape, each compiled
// once (see `prepared`): no member list travels through JavaScript and back as parameters. For a
// 100-member group that was a member read, a 100-id IN list and a 600-parameter insert, built
// and compiled again on every send.
const bumpMembers = prepared((db: Kysely<DB>, conversationId: string) =>
  db
    .updateTable('user_streams')
    .set((eb) => ({ last_seq: eb('last_seq', '+', 1) }))
    .where('user_id', 'in', (eb) =>
      eb
        .selectFrom('conversation_members')
        .select('user_id')
        .where('conversation_id', '=', conversationId),
    ),
);

const memberHeads = (db: Kysely<DB>, conversationId: string) =>
  db
    .selectFrom('conversation_members as m')
    .innerJoin('user_streams as s', 's.user_id', 'm.user_id')
    .where('m.conversation_id', '=', conversationId);

const readMemberHeads = prepared((db: Kysely<DB>, conversationId: string) =>
  memberHeads(db, conversationId).select(['s.user_id', 's.last_seq']),
);

const insertAtMemberHeads = prepared(
  (db: Kysely<DB>, conversationId: string, type: string, payload: string, now: number) =>
    db
      .insertInto('user_events')
      .columns(['user_id', 'seq', 'device_id', 'type', 'payload', 'created_at'])
      .expression(
        memberHeads(db, conversationId).select([
          's.user_id',
          's.last_seq',
          sql<null>`null`.as('device_id'),
          sql<string>`${type}`.as('type'),
          sql<string>`${payload}`.as('payload'),
          sql<number>`${now}`.as('created_at'),
        ]),
      ),
);

/**
 * Appends `event` to the stream of every member of the conversation inside the caller's
 * transaction, the members read under the conversation's row lock the caller holds: each
 * stream's `last_seq` goes up by one and the row takes that seq. Answers each member's new seq
 * (as the rows read, not a map: one send's allocations, bench/README session 21).
 * The in-process send's (SQLite) twin of mvp_send_message's stream statements (migration
 * T0700); MySQL sends through the procedure, so only SQLite runs this.
 */
export function appendToMembers(
  run: RunSync<DB>,
  conversationId: string,
  event: StoredEvent,
  now: number,
): readonly { user_id: string; last_seq: number | bigint }[] {
  run(bumpMembers, conversationId);
  run(insertAtMemberHeads, conversationId, event.type, JSON.stringify(event.payload), now);
  return run(readMemberHeads, conversationId).rows;
}

export type StreamRow = { seq: number; type: string; payload: string };

/** The user's events after `afterSeq` that `deviceId` may read (its envelopes, not others'). */
export async function readEvents(
  db: Db,
  userId: string,
  deviceId: string,
  afterSeq: number,
  limit: number,
): Promise<StreamRow[]> {
  const rows = await db
    .selectFrom('user_events')
    .select(['seq', 'type', 'payload'])
    .where('user_id', '=', userId)
    .where('seq', '>', afterSeq)
    .where((eb) => eb.or([eb('device_id', 'is', null), eb('device_id', '=', deviceId)]))
    .orderBy('seq')
    .limit(limit)
    .execute();
  return rows.map((r) => ({ ...r, seq: Number(r.seq) }));
}

/** The newest seq and the oldest still stored; null when the user is gone. */
export async function streamBounds(
  db: Db,
  userId: string,
): Promise<{ last: number; first: number } | null> {
  const row = await db
    .selectFrom('user_streams')
    .select(['last_seq', 'first_seq'])
    .where('user_id', '=', userId)
    .executeTakeFirst();
  return row ? { last: Number(row.last_seq), first: Number(row.first_seq) } : null;
}
