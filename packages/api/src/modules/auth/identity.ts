import { randomInt } from 'node:crypto';
import { phoneNumberOf } from '../users/phoneNumber';

/** The stable 8-digit public number earlier MVP clients used; random, so it leaks no count. */
export function newUniqueId(): string {
  return String(randomInt(10_000_000, 100_000_000));
}

export type Identifier =
  | { kind: 'unique_id'; value: string }
  | { kind: 'phone'; value: string }
  | { kind: 'username'; value: string };

/** How a login identifier is read: 8 digits are a unique id, a valid phone a phone, else a username. */
export function parseIdentifier(raw: string): Identifier {
  const value = raw.trim();
  if (/^\d{8}$/.test(value)) return { kind: 'unique_id', value };
  if (/^\+?[\d\s().-]{6,}$/.test(value)) {
    const phone = phoneNumberOf(value);
    if (phone) return { kind: 'phone', value: phone };
  }
  return { kind: 'username', value: value.toLowerCase() };
}

export const phoneContext = (userId: string) => `users.phone:${userId}`;
export const displayNameContext = (userId: string) => `users.display_name:${userId}`;
