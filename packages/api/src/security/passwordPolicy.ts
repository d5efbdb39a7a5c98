import { dictionary } from '@zxcvbn-ts/language-common';

export type PasswordProblem = 'too_short' | 'too_long' | 'too_common';

export const PASSWORD_MIN_LENGTH = 8;
export const PASSWORD_MAX_LENGTH = 128;

let common: Set<string> | undefined;

/**
 * NIST SP 800-63B style: a length range and a blocklist of the most common passwords, no
 * composition rules (they push people to `Password1!` without adding entropy). Lengths count
 * code points, so an emoji is one character as the user sees it, not two UTF-16 units.
 */
export function passwordProblem(password: string): PasswordProblem | null {
  const length = [...password].length;
  if (length < PASSWORD_MIN_LENGTH) return 'too_short';
  if (length > PASSWORD_MAX_LENGTH) return 'too_long';
  // ~49k entries: built on first use, not at import, so processes that never check pay nothing.
  common ??= new Set(dictionary.passwords.map((p) => p.toLowerCase()));
  if (common.has(password.toLowerCase())) return 'too_common';
  return null;
}
