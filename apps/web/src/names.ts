/**
 * How the page names a person. `@name` is a username: unique, and only a–z, 0–9 and _, so it can
 * only ever be that account. A display name is free text that anyone picks (it may contain '@',
 * and phone-registered accounts have no username), so it never shows alone: it always carries its
 * account's unique ID, which the owner cannot choose. A display name "@alice" thus reads
 * "@alice · #12345678", never like the real @alice.
 */
export type Named = { username: string | null; displayName: string; uniqueId: string };

// Bidi controls could reorder the ID out of its place (or the words around the name), control
// characters and runs of spaces could push it out of sight: none of them belong in a name.
const HIDING = /(?!\s)[\p{Cc}\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/gu;

export function nameOfProfile({ username, displayName, uniqueId }: Named): string {
  if (username) return `@${username}`;
  const name = displayName.replace(HIDING, '').replace(/\s+/g, ' ').trim();
  return `${name || 'no name'} · #${uniqueId}`;
}
