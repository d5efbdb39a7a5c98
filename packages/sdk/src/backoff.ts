export type BackoffOptions = {
  /** First retry waits up to this long. */
  minDelayMs: number;
  /** No retry waits longer than this. */
  maxDelayMs: number;
};

export const DEFAULT_BACKOFF: BackoffOptions = { minDelayMs: 250, maxDelayMs: 30_000 };

/**
 * Exponential backoff with "equal jitter": half the window is fixed, half random, so a server
 * restart does not bring every client back in the same millisecond, yet no retry is instant.
 * Math.random is fine here: this is spreading load, not secrecy.
 */
export function reconnectDelayMs(
  attempt: number,
  { minDelayMs, maxDelayMs }: BackoffOptions = DEFAULT_BACKOFF,
  random: () => number = Math.random,
): number {
  const window = Math.min(maxDelayMs, minDelayMs * 2 ** Math.max(0, attempt));
  return Math.round(window / 2 + random() * (window / 2));
}
