export type RateLimitRule = {
  /** Names the budget; the same key under two rules counts separately. */
  name: string;
  points: number;
  durationSeconds: number;
};

export type RateLimitDecision =
  { allowed: true; remaining: number } | { allowed: false; remaining: 0; retryAfterMs: number };

export type RateLimiter = {
  consume(rule: RateLimitRule, key: string, points?: number): Promise<RateLimitDecision>;
  close(): Promise<void>;
};
