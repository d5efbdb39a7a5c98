import type { TPrivacyLevel, TPublicProfile } from '@mvp/contracts';
import type { Context } from '../../context';
import { displayNameContext } from '../auth/identity';
import type { UserRow } from '../auth/users.repo';
import { relationsTo } from '../contacts/relations.repo';
import { presenceOf } from '../presence/presence';

/** Whether a setting lets this viewer through (nobody passes 'nobody'; contacts pass 'contacts'). */
export function allows(level: string, isContact: boolean): boolean {
  const l = level as TPrivacyLevel;
  return l === 'everyone' || (l === 'contacts' && isContact);
}

/**
 * Avatar keys are `avatars/<userId>/<random>.<ext>` and served at `/<key>`, a path relative to
 * the server: the random part makes each upload its own immutable, unguessable URL.
 */
export function avatarUrlOf(user: Pick<UserRow, 'avatar_key'>): string | null {
  return user.avatar_key ? `/${user.avatar_key}` : null;
}

/**
 * What `viewerId` may see of each user. A user who blocked the viewer shows only the handles the
 * viewer already has (no bio, avatar or presence): indistinguishable from a sparse profile with
 * presence hidden, so the block is not revealed. Presence shows under the owner's `presence`
 * setting (everyone, contacts or nobody).
 */
export async function publicProfiles(
  ctx: Context,
  viewerId: string,
  users: UserRow[],
  // For a contact being made in a transaction still open: shown as the viewer will see them.
  options: { asContacts?: boolean } = {},
): Promise<TPublicProfile[]> {
  const { contacts, blockedMe } = await relationsTo(
    ctx.ports.db,
    viewerId,
    users.map((u) => u.id),
  );
  const contact = (id: string) => options.asContacts === true || contacts.has(id);
  const shown = users.filter(
    (u) => !blockedMe.has(u.id) && allows(u.privacy_presence, contact(u.id)),
  );
  const presence = await presenceOf(ctx.ports, shown);
  return users.map((user) => {
    const isContact = contact(user.id);
    const blocked = blockedMe.has(user.id);
    return {
      id: user.id,
      uniqueId: user.unique_id,
      username: user.username,
      displayName: ctx.ports.cipher.decrypt(
        user.display_name_ciphertext,
        displayNameContext(user.id),
      ),
      bio: blocked ? null : user.bio,
      avatarUrl: blocked ? null : avatarUrlOf(user),
      isContact,
      presence: presence.get(user.id) ?? null,
    };
  });
}
