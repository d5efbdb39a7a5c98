import type { Kysely } from 'kysely';
import type { TPresence } from '@mvp/contracts';
import { prepared, type DB } from '@mvp/db';
import type { Ports } from '../../ports';
import { notify } from '../contacts/peopleEvents';

type PresenceRow = { id: string; last_seen_at: number | null };

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

/** Presence of each user as its owner would show it, before any privacy check. */
export async function presenceOf(
  ports: Pick<Ports, 'presence' | 'clock'>,
  users: readonly PresenceRow[],
): Promise<Map<string, TPresence>> {
  const online = await ports.presence.online(
    users.map((u) => u.id),
    ports.clock.now(),
  );
  return new Map(
    users.map((u) => [
      u.id,
      online.has(u.id)
        ? { online: true, lastSeenAt: null }
        : { online: false, lastSeenAt: iso(u.last_seen_at) },
    ]),
  );
}

// Every socket that opens or closes (the first or last of its user on an instance) runs these:
// compiled once (see `prepared`), as a reconnecting crowd would otherwise build them by the
// thousand.
const contactIds = prepared((db: Kysely<DB>, userId: string) =>
  db.selectFrom('contacts').select('contact_id').where('user_id', '=', userId),
);
const presenceSetting = prepared((db: Kysely<DB>, userId: string) =>
  db.selectFrom('users').select('privacy_presence').where('id', '=', userId),
);
const lastSeen = prepared((db: Kysely<DB>, userId: string) =>
  db.selectFrom('users').select(['id', 'last_seen_at']).where('id', '=', userId),
);
const setLastSeen = prepared((db: Kysely<DB>, userId: string, at: number) =>
  db.updateTable('users').set({ last_seen_at: at }).where('id', '=', userId),
);

/** The user's id and last seen time, as `presenceOf` takes them; undefined if there is none. */
export async function lastSeenOf(db: Kysely<DB>, userId: string): Promise<PresenceRow | undefined> {
  return (await lastSeen(db, userId)).rows[0];
}

/** Records when the user was last seen. */
export async function recordLastSeen(db: Kysely<DB>, userId: string, at: number): Promise<void> {
  await setLastSeen(db, userId, at);
}

/**
 * Who hears my presence changes live: my contacts, unless I show presence to nobody. "Everyone"
 * lets anyone read it from my profile, but live fan-out stays with contacts: pushing to every
 * user who ever looked would be a way to track people. Blocked users are never contacts.
 */
async function contactsOf(db: Kysely<DB>, userId: string): Promise<string[]> {
  return (await contactIds(db, userId)).rows.map((r) => r.contact_id);
}

/** Tells my contacts my presence now, when my settings show it to them. */
export async function announcePresence(
  ports: Ports,
  userId: string,
  presence: TPresence,
): Promise<void> {
  const owner = (await presenceSetting(ports.db, userId)).rows[0];
  if (!owner || owner.privacy_presence === 'nobody') return;
  await send(ports, await contactsOf(ports.db, userId), userId, presence);
}

/** After I changed who sees my presence: contacts learn it (null when it is now hidden). */
export async function presenceSettingChanged(ports: Ports, userId: string): Promise<void> {
  const user = await ports.db
    .selectFrom('users')
    .select(['id', 'last_seen_at', 'privacy_presence'])
    .where('id', '=', userId)
    .executeTakeFirst();
  if (!user) return;
  const presence =
    user.privacy_presence === 'nobody' ? null : (await presenceOf(ports, [user])).get(userId)!;
  await send(ports, await contactsOf(ports.db, userId), userId, presence);
}

async function send(
  ports: Ports,
  to: string[],
  userId: string,
  presence: TPresence | null,
): Promise<void> {
  await Promise.all(
    to.map((contactId) => notify(ports.bus, contactId, { type: 'presence', userId, presence })),
  );
}
